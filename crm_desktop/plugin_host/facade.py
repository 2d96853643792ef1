"""Building one plugin's :class:`~crm_desktop.plugin_api.PluginContext` and its resources.

The context's services act as ``Actor.plugin(name)``, so every write is
audited with the plugin as the actor. ``ctx.db`` sessions join the thread's
write transaction (``ctx.transaction()`` groups them with core writes), and
run their statements under a SQLite authorizer that refuses every table not
prefixed with the plugin's name: "its own tables only" is enforced by SQLite,
not by convention.

With the runtime tripwire on, everything the facade does for a plugin (its
settings file, the keyring, ``ctx.http`` requests, ``ctx.db`` connections,
record services and their audit writes, event publishing, ``ctx.api``) runs
inside ``tripwire.core_call()``: the facade checks permissions itself, so an
honest plugin using ``ctx`` is not blocked by the tripwire. Plugin code the
core calls back from inside (an event handler) is still attributed to it.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy.orm import Session

from crm_desktop.domain.actor import Actor
from crm_desktop.plugin_api.context import (
    ApiFacade, DbFacade, EventsFacade, HttpFacade, PluginContext, SecretsFacade, SettingsFacade,
)
from crm_desktop.plugin_api.models import table_prefix
from crm_desktop.plugin_host.manifest import Manifest
from crm_desktop.plugin_host.permissions import PermissionGate
from crm_desktop.plugin_host.settings_store import secret_service
from crm_desktop.plugin_host.tripwire import Tripwire
from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.storage.changes import WriteSession

log = logging.getLogger(__name__)

_TABLE_ACTIONS = {
    sqlite3.SQLITE_READ: 0, sqlite3.SQLITE_UPDATE: 0, sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_DELETE: 0,
    sqlite3.SQLITE_CREATE_TABLE: 0, sqlite3.SQLITE_DROP_TABLE: 0, sqlite3.SQLITE_CREATE_INDEX: 1,
    sqlite3.SQLITE_DROP_INDEX: 1, sqlite3.SQLITE_ALTER_TABLE: 1,
}
_ALWAYS_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA,
                  sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW}


def _core_scope(tripwire: Tripwire | None) -> Any:
    return tripwire.core_call() if tripwire is not None else nullcontext()


def _as_core(fn: Callable, tripwire: Tripwire | None) -> Callable:
    """``fn`` run as the core's own work (not attributed to the plugin on the stack)."""
    if tripwire is None:
        return fn

    def call(*args: Any, **kwargs: Any) -> Any:
        with tripwire.core_call():
            return fn(*args, **kwargs)

    return call


class CoreCalls:
    """Wraps a facade or service object so every method call runs in ``tripwire.core_call()``."""

    def __init__(self, target: Any, tripwire: Tripwire):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_tripwire", tripwire)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value) and not name.startswith("__"):
            return _as_core(value, self._tripwire)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return repr(self._target)


class ServiceRecords:
    """:class:`~crm_desktop.plugin_api.context.RecordStore` over one entity's service.

    Turns the facade's plain ``list`` arguments into the service's query objects, so the
    plugin API itself never imports :mod:`crm_desktop.services`. An unknown filter raises
    ``TypeError`` from ``ListQuery`` as before.
    """

    def __init__(self, service: Any):
        self._service = service

    def get(self, record_id: str) -> Any:
        return self._service.get(record_id)

    def list(self, *, limit: int, sort: str | None, descending: bool, filters: Mapping[str, Any]) -> list:
        sort_obj = Sort(sort, descending) if sort else None
        return list(self._service.list(ListQuery(**filters), sort_obj, limit=limit).items)

    def search(self, text: str, limit: int = 50) -> list:
        return self._service.search(text, limit=limit)

    def create(self, **fields: Any) -> Any:
        return self._service.create(**fields)

    def update(self, record_id: str, **fields: Any) -> Any:
        return self._service.update(record_id, **fields)

    def delete(self, record_id: str) -> None:
        self._service.delete(record_id)


def _wrapped(target: Any, tripwire: Tripwire | None) -> Any:
    return target if tripwire is None else CoreCalls(target, tripwire)


class PluginDatabase:
    """A plugin's sessions on the app database, limited to its tables.

    Each session is bound to the connection of the thread's one write transaction (opening it
    when none is open), so a plugin's own rows and the core records it writes through the
    facade commit or roll back together. While the plugin's session runs its statements, a
    SQLite authorizer on that connection refuses every table not prefixed with its name; the
    core's own work inside the block (``ctx.contacts.create``) runs unguarded.
    """

    def __init__(self, db: Any, plugin: str, actor: Actor, tripwire: Tripwire | None = None):
        self.tripwire = tripwire
        self.plugin = plugin
        self.prefix = table_prefix(plugin)
        self.denied_table: str | None = None
        self._db = db
        self._actor = actor

    def _authorize(self, action, arg1, arg2, db_name, trigger):
        if action in _ALWAYS_DENIED:
            self.denied_table = f"<{'pragma' if action == sqlite3.SQLITE_PRAGMA else 'schema'} {arg1}>"
            return sqlite3.SQLITE_DENY
        index = _TABLE_ACTIONS.get(action)
        if index is None:
            return sqlite3.SQLITE_OK
        table = arg1 if index == 0 else arg2
        if table is None or table.startswith((self.prefix, "sqlite_")) or trigger is not None:
            return sqlite3.SQLITE_OK
        self.denied_table = table
        return sqlite3.SQLITE_DENY

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.denied_table = None
        with _core_scope(self.tripwire):
            scope_cm = self._db.transaction(actor=self._actor)
            scope = scope_cm.__enter__()
        try:
            # a savepoint of its own inside the scope: its failure leaves the core's work in the scope alone
            # a WriteSession of this transaction: a synced plugin model's rows are stamped and their
            # changes recorded (audit, sync outbox) by the same before_flush as core records
            session = WriteSession(bind=scope.connection, join_transaction_mode="create_savepoint",
                                   expire_on_commit=False, info={"write_transaction": scope.tx})
            try:
                with scope.tx.guarded(self._authorize), session.begin():
                    yield session
            finally:
                session.close()
        except BaseException as exc:
            with _core_scope(self.tripwire):
                scope_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with _core_scope(self.tripwire):
            scope_cm.__exit__(None, None, None)

    def dispose(self) -> None:
        """Nothing to release: the sessions use the app's write connection."""


@dataclass
class ContextResources:
    """What a context holds that must be released on unload."""

    gate: PermissionGate
    http: HttpFacade
    database: PluginDatabase
    subscriptions: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for unsubscribe in self.subscriptions:
            try:
                unsubscribe()
            except Exception:
                log.exception("removing an event subscription failed")
        self.subscriptions.clear()
        self.http.close()
        self.database.dispose()


def build_context(*, manifest: Manifest, services: Any, db_path: Path, data_dir: Path,
                  policy_permits: Callable[[str], bool], role: Callable[[], Any],
                  publish: Callable[[str, str, dict], None],
                  subscribe: Callable[[str, str, Callable], Callable[[], None]],
                  read_settings: Callable[[], dict], write_setting: Callable[[str, Any], None],
                  api_client: Any = None, tripwire: Tripwire | None = None
                  ) -> tuple[PluginContext, ContextResources]:
    """The facade for one plugin and the resources to release when it unloads.

    ``tripwire``: the process tripwire the plugin is registered with (None: off);
    the facade's own I/O then runs in its ``core_call()``.
    """
    name = manifest.name
    plugin_services = services.as_actor(Actor.plugin(name))
    declared = frozenset(manifest.permissions) | frozenset(manifest.provides.permissions)
    gate = PermissionGate(name, declared, policy_permits, role, audit=_as_core(
        lambda actor, action, details: services.audit.write(actor, action, details=details), tripwire))
    http = HttpFacade(name, tuple(manifest.network.hosts), gate)
    database = PluginDatabase(services.db, name, Actor.plugin(name), tripwire)
    resources = ContextResources(gate=gate, http=http, database=database)

    def _subscribe(event_name: str, handler: Callable) -> Callable[[], None]:
        unsubscribe = subscribe(name, event_name, handler)
        resources.subscriptions.append(unsubscribe)
        return unsubscribe

    with _core_scope(tripwire):
        data_dir.mkdir(parents=True, exist_ok=True)
    records = {key: ServiceRecords(_wrapped(getattr(plugin_services, key), tripwire))
               for key in ("contacts", "companies", "leads", "deals", "activities", "users")}
    ctx = PluginContext(
        name=name, version=manifest.version, data_dir=data_dir, gate=gate, records=records,
        events=EventsFacade(name, _as_core(lambda n, p: publish(name, n, p), tripwire), _subscribe),
        settings=SettingsFacade(_as_core(read_settings, tripwire), _as_core(write_setting, tripwire)),
        secrets=_wrapped(SecretsFacade(secret_service(name)), tripwire),
        http=_wrapped(http, tripwire), api=_wrapped(ApiFacade(name, gate, api_client), tripwire),
        db=DbFacade(name, _as_core(database.session, tripwire), lambda: database.denied_table, gate),
        allowed=gate.allowed,
    )
    return ctx, resources
