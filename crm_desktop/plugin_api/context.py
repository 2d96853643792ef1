"""``PluginContext``: the one object a plugin gets, and the only door to the app.

Every call that reads or writes CRM data, talks to the network or to the
sync server is checked first against the plugin's effective permissions
(its manifest ∩ the admin policy ∩ the user's role, see ``docs/permissions.md``).
A refused call raises :class:`PermissionDenied` before it touches anything,
and the refusal is written to the audit log. Writes are audited with the
plugin as the actor.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Mapping, Protocol
from urllib.parse import urlsplit

from crm_desktop.plugin_api.aggregates import Aggregates
from crm_desktop.plugin_api.errors import NotConfigured, PermissionDenied, PluginError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class Gate(Protocol):
    """What the host gives the facade to check a permission (raises :class:`PermissionDenied`)."""

    def check(self, permission: str, operation: str) -> None: ...


def _deny(gate: Any, plugin: str, permission: str, operation: str, reason: str) -> None:
    """Refuse through the gate (which audits) when it can, else plainly."""
    deny = getattr(gate, "deny", None)
    if deny is not None:
        deny(permission, operation, reason)
    raise PermissionDenied(plugin, permission, operation, reason)


class RecordStore(Protocol):
    """What the host gives each :class:`RecordsFacade`: one entity's records, acting as the plugin.

    The host implements it over its services (``crm_desktop.plugin_host.facade``); the facade
    only checks permissions and forwards, so this module imports no internals.
    """

    def get(self, record_id: str) -> Any: ...

    def list(self, *, limit: int, sort: str | None, descending: bool, filters: Mapping[str, Any]) -> list: ...

    def search(self, text: str, limit: int = 50) -> list: ...

    def create(self, **fields: Any) -> Any: ...

    def update(self, record_id: str, **fields: Any) -> Any: ...

    def delete(self, record_id: str) -> None: ...


class RecordsFacade(Aggregates):
    """One entity's records (``ctx.contacts``, ``ctx.deals``, ...): ``<resource>:read`` / ``:write``.

    ``aggregate(...)`` (grouped counts and sums in SQL) comes from :class:`~crm_desktop.plugin_api.aggregates.Aggregates`.
    """

    def __init__(self, resource: str, service: RecordStore, gate: Gate):
        self._resource = resource
        self._service = service
        self._gate = gate

    def _check(self, action: str, operation: str) -> None:
        self._gate.check(f"{self._resource}:{action}", f"{self._resource}.{operation}")

    def get(self, record_id: str) -> Any:
        """The record with ``record_id``; ``crm_desktop.errors.NotFound`` if there is none."""
        self._check("read", "get")
        return self._service.get(record_id)

    def list(self, *, limit: int = 200, sort: str | None = None, descending: bool = False, **filters: Any) -> list:
        """Up to ``limit`` records, filtered by ``filters`` (``text``, ``tag``, ``status``, ``owner_id``, ...)."""
        self._check("read", "list")
        return self._service.list(limit=limit, sort=sort, descending=descending, filters=filters)

    def search(self, text: str, limit: int = 50) -> list:
        """Records matching the words of ``text``, best first."""
        self._check("read", "search")
        return self._service.search(text, limit=limit)

    def create(self, **fields: Any) -> Any:
        """Create a record from ``fields``; returns it as stored."""
        self._check("write", "create")
        return self._service.create(**fields)

    def update(self, record_id: str, **fields: Any) -> Any:
        """Change the given fields of a record; returns it as stored."""
        self._check("write", "update")
        return self._service.update(record_id, **fields)

    def delete(self, record_id: str) -> None:
        """Delete (tombstone) a record."""
        self._check("write", "delete")
        self._service.delete(record_id)


class EventsFacade:
    """Publish your own events (``<plugin>.<what>``) to other plugins; subscribe to any event."""

    def __init__(self, plugin: str, publish: Callable[[str, dict], None],
                 subscribe: Callable[[str, Callable[[Any], None]], Callable[[], None]]):
        self._plugin = plugin
        self._publish = publish
        self._subscribe = subscribe

    def publish(self, name: str, payload: Mapping[str, Any] | None = None) -> None:
        """Publish ``name`` with plain-data ``payload``; other plugins get it through ``crm_event``.

        The name must start with the plugin's name and a dot (``sample-plugin.synced``),
        so a plugin cannot pretend to be the core (``contact.created``) or another plugin.
        """
        if not name.startswith(self._plugin + "."):
            raise PluginError(f"plugin {self._plugin!r}: event name {name!r} must start with "
                              f"{self._plugin + '.'!r} (plugins publish only their own events)")
        self._publish(name, dict(payload or {}))

    def subscribe(self, name: str, handler: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``handler(event)`` for events named ``name`` (or starting with it when it ends in ``.``).

        Removed automatically when the plugin is disabled or reloaded; returns the unsubscribe function.
        """
        return self._subscribe(name, handler)


class SettingsFacade:
    """The plugin's settings (manifest ``settings.schema``): ``ctx.settings["key"]``, ``.get``, ``.set``."""

    def __init__(self, read: Callable[[], dict], write: Callable[[str, Any], None]):
        self._read = read
        self._write = write

    def __getitem__(self, key: str) -> Any:
        return self._read()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (secrets come from the keyring), or ``default``."""
        return self._read().get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Validate ``value`` against the schema and store it (secret ones in the keyring)."""
        self._write(key, value)

    def as_dict(self) -> dict:
        """All current values, defaults filled in."""
        return dict(self._read())


class SecretsFacade:
    """Secrets in the OS keyring, under the service ``crm-desktop.plugin.<name>``."""

    def __init__(self, service_name: str):
        self.service_name = service_name

    def get(self, key: str) -> str | None:
        """The secret stored as ``key``, or None."""
        import keyring

        return keyring.get_password(self.service_name, key)

    def set(self, key: str, value: str) -> None:
        """Store ``value`` as ``key``."""
        import keyring

        keyring.set_password(self.service_name, key, value)

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error if it was not set)."""
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(self.service_name, key)


class HttpFacade:
    """Outgoing HTTP through a ``requests.Session``: needs ``network``, only to the manifest's hosts."""

    def __init__(self, plugin: str, hosts: tuple[str, ...], gate: Gate, timeout: float = 30.0):
        self._plugin = plugin
        self._hosts = tuple(h.lower() for h in hosts)
        self._gate = gate
        self._timeout = timeout
        self._session: Any = None

    def _allowed_host(self, host: str) -> bool:
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self._hosts)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send a request (``requests`` keywords); returns the ``requests.Response``."""
        host = (urlsplit(url).hostname or "").lower()
        self._gate.check("network", f"http.{method.lower()} {url}")
        if not self._allowed_host(host):
            _deny(self._gate, self._plugin, "network", f"http.{method.lower()} {url}",
                  f"host {host!r} is not in plugin.json network.hosts ({', '.join(self._hosts) or 'none'})")
        if self._session is None:
            import requests

            self._session = requests.Session()
        kwargs.setdefault("timeout", self._timeout)
        return self._session.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        """``GET url``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        """``POST url``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        """``PUT url``."""
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        """``DELETE url``."""
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        """Close the session (the host does this on unload)."""
        if self._session is not None:
            self._session.close()
            self._session = None


class ApiFacade:
    """Calls to the sync server as the signed-in user (needs ``api:access``).

    A placeholder until sync and login land: every call checks the permission
    and then raises :class:`NotConfigured` ("not signed in / sync not configured").
    """

    def __init__(self, plugin: str, gate: Gate, client: Any = None):
        self._plugin = plugin
        self._gate = gate
        self._client = client

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send ``method path`` to the sync server (``/api/v1/...``)."""
        self._gate.check("api:access", f"api.{method.lower()} {path}")
        if self._client is None:
            raise NotConfigured(f"plugin {self._plugin!r}: ctx.api: not signed in / sync not configured "
                                f"(use `crm-desktop login --server URL --user NAME` first)")
        return self._client.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """``GET path`` on the sync server."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """``POST path`` on the sync server."""
        return self.request("POST", path, **kwargs)


class DbFacade:
    """Sessions on the plugin's own tables (``<plugin>_...``); other tables are refused by SQLite.

    Every session joins the app's one write transaction of this thread: used alone it is a
    transaction of its own; inside :meth:`PluginContext.transaction` (or another session) it is a
    savepoint of that one.
    """

    def __init__(self, plugin: str, open_session: Callable[[], ContextManager["Session"]],
                 denied: Callable[[], str | None], gate: Gate | None = None):
        self._plugin = plugin
        self._gate = gate
        self._open = open_session
        self._denied = denied

    @contextlib.contextmanager
    def session(self) -> Iterator["Session"]:
        """``with ctx.db.session() as s:`` — committed on success, rolled back on error.

        Touching a table that is not the plugin's raises :class:`PermissionDenied`.
        """
        from sqlalchemy.exc import DatabaseError

        try:
            with self._open() as session:
                yield session
        except DatabaseError as exc:
            table = self._denied()
            if table is not None and ("not authorized" in str(exc) or "prohibited" in str(exc)):
                _deny(self._gate, self._plugin, f"db:{table}", "db.session",
                      f"table {table!r} is not one of the plugin's own tables")
            raise


class PluginContext:
    """The facade handed to every hook of one plugin (``ctx``).

    Attributes: ``name``, ``version``, ``data_dir`` (a folder of its own under
    ``<home>/plugin-data``), ``log`` (logger ``crm.plugins.<name>``),
    ``contacts``, ``companies``, ``leads``, ``deals``, ``activities``, ``users``
    (:class:`RecordsFacade`), ``events`` (:class:`EventsFacade`), ``settings``
    (:class:`SettingsFacade`), ``secrets`` (:class:`SecretsFacade`), ``http``
    (:class:`HttpFacade`), ``api`` (:class:`ApiFacade`), ``db`` (:class:`DbFacade`);
    :meth:`transaction` for one transaction over the plugin's tables and core records.
    The host builds it; plugins never construct one.
    """

    def __init__(self, *, name: str, version: str, data_dir: Path, gate: Gate, records: Mapping[str, RecordStore],
                 events: EventsFacade, settings: SettingsFacade, secrets: SecretsFacade, http: HttpFacade,
                 api: ApiFacade, db: DbFacade, allowed: Callable[[str], bool]):
        self.name = name
        self.version = version
        self.data_dir = Path(data_dir)
        self.log = logging.getLogger(f"crm.plugins.{name}")
        self.contacts: RecordsFacade = RecordsFacade("contacts", records["contacts"], gate)
        self.companies: RecordsFacade = RecordsFacade("companies", records["companies"], gate)
        self.leads: RecordsFacade = RecordsFacade("leads", records["leads"], gate)
        self.deals: RecordsFacade = RecordsFacade("deals", records["deals"], gate)
        self.activities: RecordsFacade = RecordsFacade("activities", records["activities"], gate)
        self.users: RecordsFacade = RecordsFacade("users", records["users"], gate)
        self.events = events
        self.settings = settings
        self.secrets = secrets
        self.http = http
        self.api = api
        self.db = db
        self._allowed = allowed

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Session"]:
        """``with ctx.transaction() as s:`` — one transaction over your tables and core records.

        ``s`` is a session on your own tables (as :meth:`DbFacade.session`); calls such as
        ``ctx.contacts.create(...)`` made inside the block join the same transaction. Everything
        commits together when the block ends, or nothing does if it raises; core events
        (``contact.created``) are published only after the commit. Permissions are checked per call
        as always; a refused call raises inside the block and so rolls the block back.
        """
        with self.db.session() as session:
            yield session

    def allowed(self, permission: str) -> bool:
        """True if this plugin may use ``permission`` now (without raising or auditing)."""
        return self._allowed(permission)

    def __repr__(self) -> str:
        return f"<PluginContext {self.name} {self.version}>"
