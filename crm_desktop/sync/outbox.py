"""The outbox: one row per local change, written in the same transaction as the change.

:class:`OutboxWriter` is a change listener (``services.change_listeners``). For
each :class:`~crm_desktop.storage.changes.Change` of a pushable entity it adds a
``sync_outbox`` row shaped like the protocol's mutation: ``fields`` maps each
changed field to ``[base, new]`` in wire form, ``base_version`` is the row's
server version when the edit was made. The row's AUTOINCREMENT id is the
mutation id, so ids increase per device and are never reused, across crashes.

Writes from sync itself (``db.transaction(replicate=False)``) never reach the
listeners, so nothing pulled is pushed back.

Compact creates. A bulk insert (an import) writes one row per record with
``op`` ``create`` and ``fields`` the JSON ``null``: the record's values are read
from the record when the mutation is read (:func:`pending_wire`, :func:`pending`,
:func:`for_records`, :func:`problems`), as ``{field: [null, value]}`` of every
field that is not NULL, tags included. So an import does not write every value a
second time. The values read must be the ones the record was created with, so
the first later local change of such a record (the writer sees every one) first
fills the row in: the record's values now, with that change's fields set back to
their old values. A record created in bulk and hard-deleted before it was pushed
takes its compact create with it: the server never had it, so there is nothing
to send, not even the delete.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import orjson

from crm_desktop.domain.actor import Actor
from crm_desktop.storage import plugin_sync
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import BulkChanges, Change, db_time
from crm_desktop.sync import values as wire
from crm_desktop.sync.protocol_base import PUSHABLE_ENTITIES, Op

if TYPE_CHECKING:
    from crm_desktop.sync.protocol import Mutation

log = logging.getLogger(__name__)

PENDING = "pending"
REJECTED = "rejected"


def install_outbox(services) -> None:
    """Every local write of these services gets its outbox row (once per listener list). Here and
    not in :mod:`crm_desktop.sync.service`, so that opening a database (every command, an import)
    does not import the HTTP client, the keyring and the auth session."""
    if not any(isinstance(listener, OutboxWriter) for listener in services.change_listeners):
        services.change_listeners.append(OutboxWriter())


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
        gone = settle_compact(conn, wanted)
        if gone:
            wanted = [c for c in wanted if c.record_id not in gone]
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
    """The outbox rows of one bulk insert (an import): one compact create per record (``fields``
    JSON ``null``, see the module docs), in insert order, with one ``INSERT ... SELECT`` from the
    stored rows; False (nothing written) when the inserted rows cannot be found by rowid, so the
    batch goes row by row."""
    if not changes.audit_rows_in_place(conn):
        return False
    before = changes.rowid_before
    assert before is not None  # audit_rows_in_place is False without it
    conn.execute(
        "INSERT INTO sync_outbox (entity, record_id, op, fields, base_version, created_at, status) "
        f"SELECT ?, r.id, ?, 'null', r.version, ?, ? FROM {changes.table} r "
        "WHERE r.rowid > ? AND r.rowid <= ? ORDER BY r.rowid",
        (changes.entity, Op.CREATE.value, db_time(utcnow()), PENDING, before, before + len(changes)))
    return True


# -- compact creates ---------------------------------------------------------------------------

COMPACT = "null"


def compact_fields(conn, entity: str, record_ids: Sequence[str]) -> dict[str, str]:
    """The ``fields`` JSON text of compact creates: ``{field: [null, value]}`` of each record's wire
    fields that are not NULL (``tags``, sorted tag ids, when it has any), in :func:`wire.wire_columns`
    order, as ``json.dumps`` writes it. Records that no longer exist are missing from the answer.

    Entities whose wire columns are all text (contacts, companies) are read with one SQL
    expression per 900 records (``json_quote`` writes what ``json.dumps(ensure_ascii=False)``
    does: a test compares them); others convert each value with :func:`wire.to_wire`."""
    ids = list(dict.fromkeys(record_ids))
    if not ids:
        return {}
    names = wire.wire_columns(entity)
    out: dict[str, str] = {}
    if any(wire.kind_of(entity, c) != "text" for c in names):
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for record_id, record in _records_wire(conn, entity, chunk).items():
                out[record_id] = json.dumps({k: [None, v] for k, v in record.items()}, ensure_ascii=False)
        return out
    table = wire.table_of(entity).name
    parts = [f"""iif(r.{c} IS NULL, '', ', "{c}": [null, ' || json_quote(r.{c}) || ']')""" for c in names]
    link = wire.tag_link(entity) if wire.has_tags(entity) else None
    if link is not None:
        tags = (f"(SELECT json_group_array(tag_id) FROM (SELECT t.tag_id FROM {link[0].name} t "
                f"WHERE t.{link[1]} = r.id ORDER BY t.tag_id))")
        parts.append(f"""iif(EXISTS (SELECT 1 FROM {link[0].name} t WHERE t.{link[1]} = r.id), """
                     f"""', "tags": [null, ' || replace({tags}, ',', ', ') || ']', '')""")
    body = "'{' || substr(" + (" || ".join(parts) if parts else "''") + ", 3) || '}'"
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        out.update(conn.execute(f"SELECT r.id, {body} FROM {table} r WHERE r.id IN ({', '.join('?' * len(chunk))})",
                                chunk).fetchall())
    return out


def _records_wire(conn, entity: str, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """:func:`wire.record_wire` of several records (tags only when there are some)."""
    names = wire.wire_columns(entity)
    table = wire.table_of(entity).name
    marks = ", ".join("?" * len(record_ids))
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(f"SELECT id, {', '.join(names)} FROM {table} WHERE id IN ({marks})", list(record_ids)):
        out[row[0]] = {n: wire.to_wire(entity, n, v) for n, v in zip(names, row[1:]) if v is not None}
    link = wire.tag_link(entity) if wire.has_tags(entity) else None
    if link is not None and out:
        tags: dict[str, list[str]] = {}
        for record_id, tag_id in conn.execute(f"SELECT {link[1]}, tag_id FROM {link[0].name} "
                                              f"WHERE {link[1]} IN ({marks})", list(record_ids)):
            tags.setdefault(record_id, []).append(tag_id)
        for record_id, found in tags.items():
            if record_id in out:
                out[record_id]["tags"] = sorted(found)
    return out


def settle_compact(conn, changes: Sequence[Change]) -> set[str]:
    """Before local ``changes`` (already written) are queued: fill in the compact creates of the
    records they touch with the values those records were created with (their values now, each
    changed field set back to its old value, the latest change undone first). Returns the ids of
    records that no longer exist (hard-deleted before their create was pushed): their compact
    create is dropped, and their changes need no outbox row."""
    ids = list(dict.fromkeys(c.record_id for c in changes))
    compact: list[tuple[int, str, str]] = []
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        compact.extend(conn.execute(
            f"SELECT id, entity, record_id FROM sync_outbox WHERE record_id IN ({', '.join('?' * len(chunk))}) "
            "AND op = 'create' AND fields = 'null'", chunk).fetchall())
    if not compact:
        return set()
    by_record: dict[str, list[Change]] = {}
    for change in changes:
        by_record.setdefault(change.record_id, []).append(change)
    gone: set[str] = set()
    for mutation_id, entity, record_id in compact:
        record = _records_wire(conn, entity, [record_id]).get(record_id)
        if record is None:
            conn.execute("DELETE FROM sync_outbox WHERE id = ?", (mutation_id,))
            gone.add(record_id)
            continue
        for change in reversed(by_record.get(record_id, [])):
            for name, (old, _new) in change.fields.items():
                if name == "tags" and wire.has_tags(entity):
                    value: Any = wire.tag_ids_for_names(conn, old or [])
                elif name in wire.wire_columns(entity):
                    value = wire.to_wire(entity, name, old)
                else:
                    continue
                if value is None or value == []:
                    record.pop(name, None)
                else:
                    record[name] = value
        conn.execute("UPDATE sync_outbox SET fields = ? WHERE id = ?",
                     (json.dumps({k: [None, v] for k, v in record.items()}, ensure_ascii=False), mutation_id))
    return gone


def _fill_compact(conn, rows: list[tuple], entity_at: int, record_at: int, fields_at: int) -> list[tuple]:
    """Rows read from ``sync_outbox`` with each compact create's ``fields`` read from its record
    (``{}`` if the record is gone: the server answers that create ``rejected``, and the rep sees it)."""
    wanted: dict[str, list[str]] = {}
    for row in rows:
        if row[fields_at] == COMPACT:
            wanted.setdefault(row[entity_at], []).append(row[record_at])
    if not wanted:
        return rows
    found = {(entity, rid): text for entity, ids in wanted.items()
             for rid, text in compact_fields(conn, entity, ids).items()}
    out = []
    for row in rows:
        if row[fields_at] == COMPACT:
            row = (*row[:fields_at], found.get((row[entity_at], row[record_at]), "{}"), *row[fields_at + 1:])
        out.append(row)
    return out


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

    def mutation(self) -> "Mutation":
        from crm_desktop.sync.protocol import Mutation  # pydantic: only when pushing

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
    """:func:`pending`, for sending: the oldest pending mutations with an id above ``after``
    (compact creates filled in from their records)."""
    rows = conn.execute("SELECT id, entity, record_id, op, fields, base_version FROM sync_outbox "
                        "WHERE status = ? AND id > ? ORDER BY id LIMIT ?", (PENDING, after, limit)).fetchall()
    return [PendingMutation(*row) for row in _fill_compact(conn, rows, 1, 2, 4)]


def _entries(conn, rows: list[tuple]) -> list[OutboxEntry]:
    return [_entry(r) for r in _fill_compact(conn, rows, 1, 2, 4)]


def pending(conn, limit: int, after: int = 0) -> list[OutboxEntry]:
    """The oldest pending mutations with an id above ``after`` (a DBAPI connection)."""
    return _entries(conn, conn.execute(
        f"SELECT {_COLUMNS} FROM sync_outbox WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
        (PENDING, after, limit)).fetchall())


def for_records(conn, record_ids: Sequence[str]) -> dict[str, list[OutboxEntry]]:
    """Unacknowledged (pending or rejected) mutations of these records, oldest first."""
    out: dict[str, list[OutboxEntry]] = {}
    ids = list(record_ids)
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        rows = conn.execute(f"SELECT {_COLUMNS} FROM sync_outbox WHERE record_id IN "
                            f"({', '.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall()
        for entry in _entries(conn, rows):
            out.setdefault(entry.record_id, []).append(entry)
    return out


def problems(conn) -> list[OutboxEntry]:
    """Mutations the server rejected, oldest first."""
    return _entries(conn, conn.execute(
        f"SELECT {_COLUMNS} FROM sync_outbox WHERE status = ? ORDER BY id", (REJECTED,)).fetchall())


def counts(conn) -> dict[str, int]:
    rows = dict(conn.execute("SELECT status, count(*) FROM sync_outbox GROUP BY status").fetchall())
    return {"pending": rows.get(PENDING, 0), "rejected": rows.get(REJECTED, 0)}
