"""Synced plugin tables: what sync needs to know of them, without the plugin's code.

A plugin model declared as synced (``crm_desktop.plugin_api.models.SyncedModel``) has the
sync columns and an entity name ``<plugin>.<table without the plugin prefix>``
(``invoicing.invoices``). Its rows are records like the core's: the ORM write path
(:mod:`crm_desktop.storage.changes`) stamps them and records their changes, the outbox
pushes them, the pull applier writes them.

Sync needs, per plugin entity, only its table and the JSON schema of its fields
(:func:`schema_of_model`): the schema says which columns are fields and how each value
crosses the wire (``x-crm-kind``: text, int, number, bool, date, datetime). The plugin host
publishes a :class:`SyncedTable` when the plugin's tables are migrated; it is kept in the
local ``sync_plugin_tables`` table, so ``crm-desktop sync`` applies pulled invoices without
importing the invoicing plugin. The same schema goes to the server, which validates pushed
mutations against it (docs/sync-protocol.md, "Plugin data").

Changes pulled for a plugin entity this database does not know (the plugin is not installed
here yet) are parked in ``sync_parked_changes`` and applied when the plugin publishes its table.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import Boolean, Date, DateTime, Float, Integer, Numeric, String, Text, TypeDecorator

#: how a plugin entity is spelled: plugin name, a dot, the table name without the plugin's prefix
ENTITY_PATTERN = re.compile(r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*$")
#: the server stores entity names in 40 characters
MAX_ENTITY_LENGTH = 40
#: the sync columns: stamped by the store, never fields of a plugin record's schema
SYNC_COLUMNS = ("id", "created_at", "updated_at", "version", "revision", "deleted_at", "owner_id", "team_id")
#: ``x-crm-kind`` values: how a field's value is converted between the column and the wire
KINDS = ("text", "int", "number", "bool", "date", "datetime")


def is_plugin_entity(entity: str) -> bool:
    """True for a plugin entity name (``invoicing.invoices``); core entities have no dot."""
    return "." in entity


@dataclass(frozen=True)
class SyncedTable:
    """One synced plugin table: its entity name, table name, plugin and field schema."""

    entity: str
    plugin: str
    table: str
    plugin_version: str
    schema: dict[str, Any]

    @property
    def fields(self) -> tuple[str, ...]:
        """The record's fields (schema properties, in order), including ``owner_id``/``team_id``."""
        return tuple(self.schema.get("properties", {}))

    def kind(self, name: str) -> str:
        prop = self.schema.get("properties", {}).get(name, {})
        return prop.get("x-crm-kind", "text")

    def as_json(self) -> str:
        return json.dumps({"entity": self.entity, "plugin": self.plugin, "table": self.table,
                           "plugin_version": self.plugin_version, "schema": self.schema}, sort_keys=True)


# -- the schema of a model --------------------------------------------------------------------


def column_kind(column_type: Any) -> str:
    """How a column's values travel: datetime, date, bool, int, number or text (core and plugin tables)."""
    if isinstance(column_type, TypeDecorator):
        return getattr(column_type, "crm_kind", None) or column_kind(column_type.impl_instance)
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, Date):
        return "date"
    if isinstance(column_type, Integer):
        return "int"
    if isinstance(column_type, (Numeric, Float)):
        return "number"
    return "text"


_JSON_TYPE = {"text": "string", "int": "integer", "number": "number", "bool": "boolean",
              "date": "string", "datetime": "string"}


def _property(column: Any) -> dict[str, Any]:
    kind = column_kind(column.type)
    prop: dict[str, Any] = {"type": [_JSON_TYPE[kind], "null"] if column.nullable else _JSON_TYPE[kind],
                            "x-crm-kind": kind}
    if kind == "datetime":
        prop["format"] = "date-time"
    elif kind == "date":
        prop["format"] = "date"
    elif kind == "text" and isinstance(column.type, String) and not isinstance(column.type, Text) \
            and column.type.length:
        prop["maxLength"] = column.type.length
    # the plugin may say more (an enum of statuses, a pattern for money): merged over the derived rule
    extra = column.info.get("json_schema") if column.info else None
    if extra:
        prop.update(extra)
    return prop


def entity_name(plugin: str, table: str) -> str:
    """``<plugin>.<table without the plugin's prefix>``."""
    prefix = plugin.replace("-", "_") + "_"
    return f"{plugin}.{table[len(prefix):] if table.startswith(prefix) else table}"


def schema_of_model(model: Any) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a synced plugin model's records.

    Every column except the stamps (``id``, ``created_at``, ``updated_at``, ``version``,
    ``revision``, ``deleted_at``) is a property; ``owner_id``/``team_id`` are fields as in core
    records. A NOT NULL column is required. A column's ``info={"json_schema": {...}}`` is
    merged into its property (e.g. an ``enum`` or a ``pattern``).
    """
    table = model.__table__
    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in table.columns:
        if column.name in SYNC_COLUMNS and column.name not in ("owner_id", "team_id"):
            continue
        properties[column.name] = _property(column)
        if not column.nullable and column.name not in ("owner_id", "team_id"):
            required.append(column.name)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "title": entity_name(getattr(model, "__crm_plugin__", ""), table.name),
            "properties": properties, "required": required, "additionalProperties": False}


# -- the registry ------------------------------------------------------------------------------

_lock = threading.Lock()
_by_entity: dict[str, SyncedTable] = {}
_by_table: dict[str, SyncedTable] = {}


def register(spec: SyncedTable) -> None:
    """Know ``spec`` in this process (sync's value conversions read it)."""
    with _lock:
        old = _by_entity.get(spec.entity)
        if old is not None:
            _by_table.pop(old.table, None)
        _by_entity[spec.entity] = spec
        _by_table[spec.table] = spec


def spec(entity: str) -> SyncedTable | None:
    """The synced plugin table of ``entity`` known in this process, or None."""
    return _by_entity.get(entity)


def entity_of_table(table: str) -> str | None:
    known = _by_table.get(table)
    return known.entity if known is not None else None


def known() -> list[SyncedTable]:
    return list(_by_entity.values())


def load(conn: Any) -> list[SyncedTable]:
    """Register every synced plugin table this database knows (a DBAPI connection); returns them."""
    try:
        rows = conn.execute("SELECT spec FROM sync_plugin_tables").fetchall()
    except Exception:  # a database older than the table (not migrated yet): nothing to know
        return []
    out = []
    for (text,) in rows:
        data = json.loads(text)
        table = SyncedTable(data["entity"], data["plugin"], data["table"], data.get("plugin_version", ""),
                            data["schema"])
        register(table)
        out.append(table)
    return out


def store(conn: Any, table: SyncedTable) -> None:
    """Keep ``table`` in ``sync_plugin_tables`` (a DBAPI connection, inside a write transaction)."""
    conn.execute("INSERT INTO sync_plugin_tables (entity, plugin, table_name, spec) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (entity) DO UPDATE SET plugin = excluded.plugin, table_name = excluded.table_name, "
                 "spec = excluded.spec", (table.entity, table.plugin, table.table, table.as_json()))
    register(table)


def forget_plugin(conn: Any, plugin: str) -> None:
    """Drop what is known of ``plugin``'s synced tables (its data was dropped)."""
    conn.execute("DELETE FROM sync_plugin_tables WHERE plugin = ?", (plugin,))
    with _lock:
        for entity in [e for e, s in _by_entity.items() if s.plugin == plugin]:
            _by_table.pop(_by_entity.pop(entity).table, None)


def tables_of(models: Iterable[Any], plugin: str, plugin_version: str) -> list[SyncedTable]:
    """The :class:`SyncedTable` of each synced model among ``models``."""
    out = []
    for model in models:
        entity = getattr(model, "__crm_sync_entity__", None)
        if entity is None or getattr(model, "__table__", None) is None:
            continue
        out.append(SyncedTable(entity, plugin, model.__table__.name, plugin_version, schema_of_model(model)))
    return out
