"""Building one plugin's :class:`~crm_desktop.plugin_api.PluginContext` and its resources.

The context's services act as ``Actor.plugin(name)``, so every write is
audited with the plugin as the actor. ``ctx.db`` uses an engine of its own
whose SQLite authorizer refuses every table not prefixed with the plugin's
name: "its own tables only" is enforced by SQLite, not by convention.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from crm_desktop.domain.actor import Actor
from crm_desktop.plugin_api.context import (
    ApiFacade, DbFacade, EventsFacade, HttpFacade, PluginContext, SecretsFacade, SettingsFacade,
)
from crm_desktop.plugin_api.models import table_prefix
from crm_desktop.plugin_host.manifest import Manifest
from crm_desktop.plugin_host.permissions import PermissionGate
from crm_desktop.plugin_host.settings_store import secret_service

log = logging.getLogger(__name__)

_TABLE_ACTIONS = {
    sqlite3.SQLITE_READ: 0, sqlite3.SQLITE_UPDATE: 0, sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_DELETE: 0,
    sqlite3.SQLITE_CREATE_TABLE: 0, sqlite3.SQLITE_DROP_TABLE: 0, sqlite3.SQLITE_CREATE_INDEX: 1,
    sqlite3.SQLITE_DROP_INDEX: 1, sqlite3.SQLITE_ALTER_TABLE: 1,
}
_ALWAYS_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA,
                  sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW}


class PluginDatabase:
    """A plugin's own engine on the app database, limited to its tables."""

    def __init__(self, db_path: Path, plugin: str):
        self.plugin = plugin
        self.prefix = table_prefix(plugin)
        self.denied_table: str | None = None
        self._engine = None
        self._sessions: sessionmaker | None = None
        self._db_path = db_path

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

    def session(self) -> Session:
        if self._sessions is None:
            from crm_desktop.storage.engine import make_engine

            self._engine = make_engine(self._db_path, immediate=True)

            # Registered after make_engine's own listener: its PRAGMAs run before the authorizer exists.
            @event.listens_for(self._engine, "connect")
            def _limit(dbapi_connection, _record):
                dbapi_connection.set_authorizer(self._authorize)

            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self.denied_table = None
        return self._sessions()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._sessions = None


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
                  api_client: Any = None) -> tuple[PluginContext, ContextResources]:
    """The facade for one plugin and the resources to release when it unloads."""
    name = manifest.name
    plugin_services = services.as_actor(Actor.plugin(name))
    declared = frozenset(manifest.permissions) | frozenset(manifest.provides.permissions)
    gate = PermissionGate(name, declared, policy_permits, role,
                          audit=lambda actor, action, details: services.audit.write(actor, action, details=details))
    http = HttpFacade(name, tuple(manifest.network.hosts), gate)
    database = PluginDatabase(db_path, name)
    resources = ContextResources(gate=gate, http=http, database=database)

    def _subscribe(event_name: str, handler: Callable) -> Callable[[], None]:
        unsubscribe = subscribe(name, event_name, handler)
        resources.subscriptions.append(unsubscribe)
        return unsubscribe

    data_dir.mkdir(parents=True, exist_ok=True)
    records = {"contacts": plugin_services.contacts, "companies": plugin_services.companies,
               "leads": plugin_services.leads, "deals": plugin_services.deals,
               "activities": plugin_services.activities, "users": plugin_services.users}
    ctx = PluginContext(
        name=name, version=manifest.version, data_dir=data_dir, gate=gate, records=records,
        events=EventsFacade(name, lambda n, p: publish(name, n, p), _subscribe),
        settings=SettingsFacade(read_settings, write_setting),
        secrets=SecretsFacade(secret_service(name)),
        http=http, api=ApiFacade(name, gate, api_client),
        db=DbFacade(name, database.session, lambda: database.denied_table, gate),
        allowed=gate.allowed,
    )
    return ctx, resources
