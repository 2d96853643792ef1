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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Mapping
from urllib.parse import urlsplit

from crm_desktop.errors import ValidationError
from crm_desktop.plugin_api.data import (
    ActivitiesFacade, ActivityStore, CompaniesFacade, ContactsFacade, DealsFacade, DealStore, Gate, LeadsFacade,
    LeadStore, PipelinesFacade, PipelineStore, RecordsFacade, RecordStore, TagsFacade, TagStore, UsersFacade,
    UserStore,
)
from crm_desktop.plugin_api.errors import NotConfigured, PermissionDenied, PluginError
from crm_desktop.plugin_api.records import Company, Contact, Event
from crm_desktop.plugin_api.ui import UiFacade

__all__ = [
    "ApiFacade", "DbFacade", "EventsFacade", "Gate", "HttpFacade", "PluginContext", "RecordStore", "RecordsFacade",
    "SecretsFacade", "SettingsFacade", "Stores",
]

#: The longest agent (model) name ``ctx.acting_as_agent`` takes (the audit log's actor name column).
MAX_AGENT_NAME = 100

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _deny(gate: Any, plugin: str, permission: str, operation: str, reason: str) -> None:
    """Refuse through the gate (which audits) when it can, else plainly."""
    deny = getattr(gate, "deny", None)
    if deny is not None:
        deny(permission, operation, reason)
    raise PermissionDenied(plugin, permission, operation, reason)


class EventsFacade:
    """Publish your own events (``<plugin>.<what>``) to other plugins; subscribe to any event."""

    def __init__(self, plugin: str, publish: Callable[[str, dict[str, Any]], None],
                 subscribe: Callable[[str, Callable[[Event], None]], Callable[[], None]]):
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

    def subscribe(self, name: str, handler: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``handler(event)`` for events named ``name`` (or starting with it when it ends in ``.``).

        Removed automatically when the plugin is disabled or reloaded; returns the unsubscribe function.
        """
        return self._subscribe(name, handler)


class SettingsFacade:
    """The plugin's settings (manifest ``settings.schema``): ``ctx.settings["key"]``, ``.get``, ``.set``."""

    def __init__(self, read: Callable[[], dict[str, Any]], write: Callable[[str, Any], None]):
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

    def as_dict(self) -> dict[str, Any]:
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


@dataclass(frozen=True)
class Stores:
    """The record stores the host gives a :class:`PluginContext` (one per facade)."""

    contacts: RecordStore[Contact]
    companies: RecordStore[Company]
    leads: LeadStore
    deals: DealStore
    activities: ActivityStore
    users: UserStore
    pipelines: PipelineStore
    tags: TagStore


class PluginContext:
    """The facade handed to every hook of one plugin (``ctx``).

    Attributes: ``name``, ``version``, ``data_dir`` (a folder of its own under
    ``<home>/plugin-data``), ``log`` (logger ``crm.plugins.<name>``),
    ``contacts``, ``companies``, ``leads``, ``deals``, ``activities``, ``users``
    (:class:`RecordsFacade` and its subclasses), ``pipelines``, ``tags``,
    ``events`` (:class:`EventsFacade`), ``settings`` (:class:`SettingsFacade`),
    ``secrets`` (:class:`SecretsFacade`), ``http`` (:class:`HttpFacade`),
    ``api`` (:class:`ApiFacade`), ``db`` (:class:`DbFacade`), ``ui``
    (:class:`UiFacade`, desktop app only); :meth:`transaction` for one transaction
    over the plugin's tables and core records, :meth:`acting_as_agent` and
    :meth:`on_dispose`. The host builds it; plugins never construct one.
    """

    def __init__(self, *, name: str, version: str, data_dir: Path, gate: Gate, records: Stores,
                 events: EventsFacade, settings: SettingsFacade, secrets: SecretsFacade, http: HttpFacade,
                 api: ApiFacade, db: DbFacade, allowed: Callable[[str], bool],
                 agent: Callable[[str], ContextManager[None]] | None = None,
                 on_dispose: Callable[[Callable[[], object]], None] | None = None,
                 ui: Callable[[], UiFacade | None] | None = None):
        self.name = name
        self.version = version
        self.data_dir = Path(data_dir)
        self.log = logging.getLogger(f"crm.plugins.{name}")
        self.contacts: ContactsFacade = ContactsFacade("contacts", records.contacts, gate)
        self.companies: CompaniesFacade = CompaniesFacade("companies", records.companies, gate)
        self.leads: LeadsFacade = LeadsFacade(records.leads, gate)
        self.deals: DealsFacade = DealsFacade(records.deals, gate)
        self.activities: ActivitiesFacade = ActivitiesFacade(records.activities, gate)
        self.users: UsersFacade = UsersFacade(records.users, gate)
        self.pipelines: PipelinesFacade = PipelinesFacade(records.pipelines, gate)
        self.tags: TagsFacade = TagsFacade(records.tags, gate)
        self.events = events
        self.settings = settings
        self.secrets = secrets
        self.http = http
        self.api = api
        self.db = db
        self._allowed = allowed
        self._gate = gate
        self._agent = agent
        self._on_dispose = on_dispose
        self._ui = ui

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

    @contextlib.contextmanager
    def acting_as_agent(self, model: str) -> Iterator[None]:
        """``with ctx.acting_as_agent("claude-sonnet-4"):`` — writes made inside the block (on this
        thread, and in ``ctx.ui.run_in_background`` work started from it) are audited with actor
        ``agent:<model>`` on behalf of the signed-in user, instead of ``plugin:<name>``.

        Permissions stay the plugin's: an agent can do no more than the plugin that runs it.
        """
        if not isinstance(model, str) or not model.strip() or len(model) > MAX_AGENT_NAME \
                or any(not ch.isprintable() for ch in model):
            raise ValidationError("model", model, f"must be a printable name of 1 to {MAX_AGENT_NAME} "
                                                  f"characters, e.g. 'claude-sonnet-4'", "agent")
        if self._agent is None:
            raise NotConfigured(f"plugin {self.name!r}: acting as an agent is not available in this host")
        with self._agent(model.strip()):
            yield

    def on_dispose(self, callback: Callable[[], object]) -> Callable[[], object]:
        """Run ``callback()`` when the plugin is disabled, reloaded, uninstalled, fails or the app quits.

        Callbacks run in the reverse order of registration, each guarded (one that raises is logged
        and the others still run). Returns ``callback``, so it also works as a decorator.
        """
        if not callable(callback):
            raise PluginError(f"plugin {self.name!r}: ctx.on_dispose needs a callable, got {callback!r}")
        if self._on_dispose is None:
            raise NotConfigured(f"plugin {self.name!r}: ctx.on_dispose is not available in this host")
        self._on_dispose(callback)
        return callback

    @property
    def ui(self) -> UiFacade:
        """The desktop window's :class:`UiFacade`; :class:`NotConfigured` on the command line."""
        ui = self._ui() if self._ui is not None else None
        if ui is None:
            raise NotConfigured(f"plugin {self.name!r}: ctx.ui is only available in the desktop app "
                                f"(not on the command line or in a headless host)")
        return ui

    def allowed(self, permission: str) -> bool:
        """True if this plugin may use ``permission`` now (without raising or auditing)."""
        return self._allowed(permission)

    def require(self, permission: str, operation: str) -> None:
        """Raise :class:`PermissionDenied` unless this plugin may use ``permission`` now; the refusal is
        written to the audit log (``permission.denied``, with ``operation``) like a refused facade call.

        For a plugin that refuses something before doing it (an agent's write that would only run
        after the user approves it): the refusal is audited now, not when nothing is left to refuse.
        """
        if not isinstance(permission, str) or not permission.strip():
            raise ValidationError("permission", permission, "must be a permission name such as 'deals:write'",
                                  "plugin")
        if not isinstance(operation, str) or not operation.strip():
            raise ValidationError("operation", operation, "must say what was refused, e.g. 'agent.update_deal'",
                                  "plugin")
        self._gate.check(permission, operation)

    def __repr__(self) -> str:
        return f"<PluginContext {self.name} {self.version}>"
