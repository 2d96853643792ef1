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
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import Change, db_time
from crm_desktop.sync import values as wire
from crm_desktop.sync.protocol import PUSHABLE_ENTITIES, Mutation, Op

log = logging.getLogger(__name__)

PENDING = "pending"
REJECTED = "rejected"


class OutboxWriter:
    """Change listener: ``writer(session, changes, actor)`` adds one outbox row per change."""

    def __call__(self, session, changes: Sequence[Change], actor: Actor | None) -> None:
        conn = session.connection().connection.driver_connection
        wanted = [c for c in changes if c.entity in PUSHABLE_ENTITIES]
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
