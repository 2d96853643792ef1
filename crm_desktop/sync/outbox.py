"""The outbox: one row per local change, written in the same transaction as the change.

:class:`OutboxWriter` is a change listener (``services.change_listeners``). For
each :class:`~crm_desktop.storage.changes.Change` of a pushable entity it adds a
``sync_outbox`` row shaped like the protocol's mutation: ``fields`` maps each
changed field to ``[base, new]`` in wire form, ``base_version`` is the row's
server version when the edit was made. The row's AUTOINCREMENT id is the
mutation id, so ids increase per device and are never reused, across crashes.

Writes from sync itself (``db.transaction(replicate=False)``) never reach the
listeners, so nothing pulled is pushed back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from crm_desktop.domain.actor import Actor
from crm_desktop.storage import plugin_sync
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import BulkChanges, Change, db_time
from crm_desktop.sync import values as wire
from crm_desktop.sync.protocol import PUSHABLE_ENTITIES, Mutation, Op

log = logging.getLogger(__name__)

PENDING = "pending"
REJECTED = "rejected"


class OutboxWriter:
    """Change listener: ``writer(session, changes, actor)`` adds one outbox row per change."""

    def __call__(self, session, changes: Sequence[Change], actor: Actor | None) -> None:
        conn = session.connection().connection.driver_connection
        if isinstance(changes, BulkChanges):
            if changes.entity not in PUSHABLE_ENTITIES:
                return
            if write_bulk(conn, changes):
                return
        wanted = [c for c in changes if pushable(c.entity)]
        if not wanted:
            return
        versions = _versions(conn, wanted)
        now = db_time(utcnow())
        rows = []
        for change in wanted:
            op, fields = mutation_fields(conn, change)
            if op is None:
                continue
            rows.append((change.entity, change.record_id, op, json.dumps(fields, ensure_ascii=False),
                         versions.get((change.entity, change.record_id), 0), now, PENDING))
        conn.executemany(
            "INSERT INTO sync_outbox (entity, record_id, op, fields, base_version, created_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def pushable(entity: str) -> bool:
    """A core entity clients push, or a synced plugin entity this process knows (storage/plugin_sync.py)."""
    return entity in PUSHABLE_ENTITIES or (plugin_sync.is_plugin_entity(entity) and wire.is_known(entity))


def mutation_fields(conn, change: Change) -> tuple[str | None, dict[str, list[Any]]]:
    """The protocol op and ``{field: [base, new]}`` of a local change (op None: nothing to send)."""
    entity = change.entity
    known = wire.wire_columns(entity)
    if change.op == "delete":
        return Op.DELETE.value, {}
    restored = change.op == "update" and "deleted_at" in change.fields and change.fields["deleted_at"][1] is None
    if restored:
        # a tombstoned record brought back: send it whole, as a create, which the server restores
        record = wire.record_wire(conn, entity, change.record_id) or {}
        return Op.CREATE.value, {name: [None, value] for name, value in record.items()}
    fields: dict[str, list[Any]] = {}
    for name, (old, new) in change.fields.items():
        if name == "tags" and wire.has_tags(entity):
            old_ids = wire.tag_ids_for_names(conn, old or []) if change.op != "create" else None
            fields["tags"] = [old_ids, wire.tag_ids_for_names(conn, new or [])]
        elif name in known:
            base = wire.to_wire(entity, name, old) if change.op != "create" else None
            fields[name] = [base, wire.to_wire(entity, name, new)]
    if change.op == "update" and not fields:
        return None, {}
    return (Op.CREATE.value if change.op == "create" else Op.UPDATE.value), fields


def write_bulk(conn, changes: BulkChanges) -> bool:
    """The outbox rows of one bulk insert (an import, sync's first pull) with one ``INSERT ... SELECT``
    from the stored rows, instead of a :class:`Change`, a ``to_wire`` per value and a ``json.dumps``
    per row; False (nothing written) when the batch does not have the shape this needs.

    The text is the one :meth:`OutboxWriter.__call__` writes row by row, byte for byte: ``json.dumps``
    with its default separators and ``ensure_ascii=False`` (which ``json_quote`` matches), the fields
    in the change's order, ``base_version`` the stored ``version``. Only plain text columns are
    written this way: ``to_wire`` changes nothing on them, because a bulk writer stores values
    cleaned by the services' rules, which are the wire rules (a datetime, date, flag or number column
    would need a conversion, so such a batch goes row by row). Tags (the only extra a bulk insert
    adds) become their sorted tag ids, appended last as the row-by-row path does.
    """
    entity = changes.entity
    if not changes.audit_rows_in_place(conn):
        return False
    known = set(wire.wire_columns(entity))
    names = [c for c in changes.field_columns() if c in known]
    if any(wire.kind_of(entity, c) != "text" for c in names):
        return False
    if any(set(extra) - {"tags"} for extra in changes.extras.values()):
        return False
    if changes.extras and not wire.has_tags(entity):
        return False
    parts = [f"""iif(r.{c} IS NULL, '', ', "{c}": [null, ' || json_quote(r.{c}) || ']')""" for c in names]
    extra_join = ""
    if changes.extras:
        tag_rows = [(rid, json.dumps(wire.tag_ids_for_names(conn, extra["tags"][1] or []), ensure_ascii=False))
                    for rid, extra in changes.extras.items()]
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS bulk_outbox_tags (record_id TEXT PRIMARY KEY, ids TEXT)")
        conn.execute("DELETE FROM temp.bulk_outbox_tags")
        conn.executemany("INSERT INTO temp.bulk_outbox_tags VALUES (?, ?)", tag_rows)
        parts.append("""iif(e.ids IS NULL, '', ', "tags": [null, ' || e.ids || ']')""")
        extra_join = "LEFT JOIN temp.bulk_outbox_tags e ON e.record_id = r.id"
    body = "'{' || substr(" + (" || ".join(parts) if parts else "''") + ", 3) || '}'"
    conn.execute(
        "INSERT INTO sync_outbox (entity, record_id, op, fields, base_version, created_at, status) "
        f"SELECT ?, r.id, ?, {body}, r.version, ?, ? FROM {changes.table} r {extra_join} "
        "WHERE r.rowid > ? AND r.rowid <= ? ORDER BY r.rowid",
        (entity, Op.CREATE.value, db_time(utcnow()), PENDING, changes.rowid_before,
         changes.rowid_before + len(changes)))
    if changes.extras:
        conn.execute("DELETE FROM temp.bulk_outbox_tags")
    return True


def _versions(conn, changes: Sequence[Change]) -> dict[tuple[str, str], int]:
    by_entity: dict[str, set[str]] = {}
    for c in changes:
        by_entity.setdefault(c.entity, set()).add(c.record_id)
    out: dict[tuple[str, str], int] = {}
    for entity, ids in by_entity.items():
        table = wire.table_of(entity).name
        id_list = list(ids)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start:start + 900]
            for record_id, version in conn.execute(
                    f"SELECT id, version FROM {table} WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
                out[(entity, record_id)] = version
    return out


# -- reading the outbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row as plain data."""

    mutation_id: int
    entity: str
    record_id: str
    op: str
    fields: dict[str, list[Any]]
    base_version: int
    status: str
    reason: str | None = None
    message: str | None = None
    created_at: str | None = None

    def mutation(self) -> Mutation:
        return Mutation(mutation_id=self.mutation_id, entity=self.entity, id=self.record_id, op=Op(self.op),
                        fields={k: (v[0], v[1]) for k, v in self.fields.items()}, base_version=self.base_version)


_COLUMNS = "id, entity, record_id, op, fields, base_version, status, reason, message, created_at"


def _entry(row) -> OutboxEntry:
    return OutboxEntry(row[0], row[1], row[2], row[3], json.loads(row[4]) if row[4] else {}, row[5], row[6],
                       row[7], row[8], row[9])


@dataclass(frozen=True, slots=True)
class PendingMutation:
    """A pending outbox row as push sends it: ``fields`` stays the JSON text the outbox stores (it
    is already the wire's ``{name: [base, new]}``), so a batch is encoded without parsing it."""

    mutation_id: int
    entity: str
    record_id: str
    op: str
    fields_json: str
    base_version: int

    def wire(self) -> dict[str, Any]:
        """The protocol's ``Mutation`` as JSON data (orjson writes ``fields`` verbatim)."""
        return {"mutation_id": self.mutation_id, "entity": self.entity, "id": self.record_id, "op": self.op,
                "fields": orjson.Fragment(self.fields_json or "{}"), "base_version": self.base_version}


def pending_wire(conn, limit: int, after: int = 0) -> list[PendingMutation]:
    """:func:`pending`, for sending: the oldest pending mutations with an id above ``after``."""
    return [PendingMutation(*row) for row in conn.execute(
        "SELECT id, entity, record_id, op, fields, base_version FROM sync_outbox "
        "WHERE status = ? AND id > ? ORDER BY id LIMIT ?", (PENDING, after, limit))]


def pending(conn, limit: int, after: int = 0) -> list[OutboxEntry]:
    """The oldest pending mutations with an id above ``after`` (a DBAPI connection)."""
    return [_entry(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM sync_outbox WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
        (PENDING, after, limit))]


def for_records(conn, record_ids: Sequence[str]) -> dict[str, list[OutboxEntry]]:
    """Unacknowledged (pending or rejected) mutations of these records, oldest first."""
    out: dict[str, list[OutboxEntry]] = {}
    ids = list(record_ids)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for row in conn.execute(f"SELECT {_COLUMNS} FROM sync_outbox WHERE record_id IN "
                                f"({', '.join('?' * len(chunk))}) ORDER BY id", chunk):
            entry = _entry(row)
            out.setdefault(entry.record_id, []).append(entry)
    return out


def problems(conn) -> list[OutboxEntry]:
    """Mutations the server rejected, oldest first."""
    return [_entry(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM sync_outbox WHERE status = ? ORDER BY id", (REJECTED,))]


def counts(conn) -> dict[str, int]:
    rows = dict(conn.execute("SELECT status, count(*) FROM sync_outbox GROUP BY status").fetchall())
    return {"pending": rows.get(PENDING, 0), "rejected": rows.get(REJECTED, 0)}
