"""What the rep does with conflicts and sync problems. Qt-free: the Conflicts view and the
Sync problems list call these.

Conflicts (the server kept its value, ours is in the conflict):

* :func:`keep_mine` writes the rep's value again as a new local edit, so its outbox row starts
  from the server's value (the new base) and the next push applies it;
* :func:`take_theirs` drops the local change: the row shows the server's value, no mutation.

Both work for records of synced plugin tables (``invoicing.invoices``) as for core records,
without the plugin's code: the table and its fields come from the schema the plugin published
(:mod:`crm_desktop.storage.plugin_sync`), and "keep mine" records its change through the same
write transaction as the ORM path, so the audit log and the outbox get it alike.

Problems (mutations the server rejected, with its reason):

* :func:`resend` queues the mutation again, with a new mutation id and the record's current
  values (after the rep fixed them);
* :func:`discard` drops it and puts the local row back as the server has it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crm_desktop.errors import NotFound, ValidationError
from crm_desktop.storage import plugin_sync
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import Change, db_time
from crm_desktop.storage.models import MODELS, Tag
from crm_desktop.sync import local_writes, outbox
from crm_desktop.sync import values as wire
from crm_desktop.sync.applier import SYNC_ACTOR


@dataclass(frozen=True)
class ConflictInfo:
    """One open conflict, as plain data for views."""

    id: int
    entity: str
    record_id: str
    kind: str  # fields | deleted | edited
    fields: list[dict[str, Any]]  # {field, base, mine, theirs}
    theirs: dict[str, Any] | None
    version: int | None
    created_at: str
    title: str = ""


def conflicts(db) -> list[ConflictInfo]:
    with db.read_connection() as c:
        conn = c.connection.driver_connection
        rows = conn.execute("SELECT id, entity, record_id, kind, fields, theirs, version, created_at "
                            "FROM sync_conflicts ORDER BY id").fetchall()
        return [ConflictInfo(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else [],
                             json.loads(r[5]) if r[5] else None, r[6], str(r[7]), record_title(conn, r[1], r[2]))
                for r in rows]


def problems(db) -> list[outbox.OutboxEntry]:
    with db.read_connection() as c:
        return outbox.problems(c.connection.driver_connection)


def _known(conn, entity: str) -> bool:
    """True if this database can write ``entity`` (a synced plugin table is looked up in the tables
    its plugin published, so this works without the plugin loaded, e.g. on the command line)."""
    if wire.is_known(entity):
        return True
    if plugin_sync.is_plugin_entity(entity):
        plugin_sync.load(conn)
    return wire.is_known(entity)


def _require_known(conn, entity: str) -> None:
    if not _known(conn, entity):
        raise ValidationError("entity", entity, "no plugin on this laptop syncs this table any more "
                                                "(install or enable the plugin that owns it first)", "conflict")


def record_title(conn, entity: str, record_id: str) -> str:
    """A short human name of a record (for lists of conflicts and problems)."""
    if not _known(conn, entity):
        return f"{entity} {record_id[:8]} (its plugin is not installed)"
    table = wire.table_of(entity)
    names = [n for n in ("name", "title", "subject", "first_name", "last_name", "username") if n in table.columns]
    if not names and plugin_sync.is_plugin_entity(entity):  # a plugin record: its first text field
        names = [n for n in wire.wire_columns(entity)
                 if n not in ("owner_id", "team_id") and wire.kind_of(entity, n) == "text"][:1]
    if not names:
        return record_id
    row = conn.execute(f"SELECT {', '.join(names)} FROM {table.name} WHERE id = ?", (record_id,)).fetchone()
    if row is None:
        return f"{entity} {record_id[:8]} (not on this laptop)"
    text = " ".join(str(v) for v in row if v)
    return text or record_id


def _conflict(db, conflict_id: int) -> ConflictInfo:
    for c in conflicts(db):
        if c.id == conflict_id:
            return c
    raise NotFound("conflict", str(conflict_id))


def keep_mine(services, conflict_id: int) -> None:
    """Send the rep's value again, on top of the server's current value."""
    conflict = _conflict(services.db, conflict_id)
    if plugin_sync.is_plugin_entity(conflict.entity):
        _keep_mine_plugin(services, conflict)
        return
    model = MODELS[conflict.entity]
    with services.unit_of_work(audit_action="keep-mine") as uow:
        session = uow.session
        row = session.get(model, conflict.record_id)
        if conflict.kind == "deleted":
            # the server deleted it: bringing it back sends the whole record as a create
            if row is not None:
                row.deleted_at = None
        elif conflict.kind == "edited":
            if row is not None and row.deleted_at is None:
                row.deleted_at = utcnow()
        elif row is not None:
            values: dict[str, Any] = {}
            for item in conflict.fields:
                name, mine = item["field"], item["mine"]
                if name == "tags":
                    row.tags = [t for t in (session.get(Tag, tid) for tid in mine or []) if t is not None]
                elif name in wire.wire_columns(conflict.entity):
                    setattr(row, name, wire.to_python(conflict.entity, name, mine))
                    values[name] = mine
            if wire.affects_keys(conflict.entity, values):
                current = wire.record_wire(session.connection().connection.driver_connection,
                                           conflict.entity, conflict.record_id) or {}
                current.update(values)
                for key, value in wire.derived_keys(conflict.entity, current).items():
                    setattr(row, key, value)
        session.flush()
        session.connection().connection.driver_connection.execute(
            "DELETE FROM sync_conflicts WHERE id = ?", (conflict_id,))


def _keep_mine_plugin(services, conflict: ConflictInfo) -> None:
    """:func:`keep_mine` for a synced plugin table: plain SQL on its columns (the plugin's model class
    is not needed), stamped and recorded as the ORM path does, so the outbox sends it on top of the
    server's value and the audit log names the rep."""
    entity, record_id = conflict.entity, conflict.record_id
    with services.unit_of_work(audit_action="keep-mine") as uow:
        tx = uow.transaction
        conn = tx.dbapi_connection
        _require_known(conn, entity)
        table = wire.table_of(entity).name
        row = conn.execute(f"SELECT deleted_at FROM {table} WHERE id = ?", (record_id,)).fetchone()
        now = utcnow()
        change = None
        if row is None:
            pass  # the record left this laptop meanwhile: nothing to send, the conflict is settled
        elif conflict.kind == "deleted":
            # the server deleted it: bringing it back sends the whole record as a create
            if row[0] is not None:
                change = Change(entity, record_id, "update", {"deleted_at": (row[0], None)})
                conn.execute(f"UPDATE {table} SET deleted_at = NULL WHERE id = ?", (record_id,))
        elif conflict.kind == "edited":
            if row[0] is None:
                change = Change(entity, record_id, "delete", {"deleted_at": (None, now)})
                conn.execute(f"UPDATE {table} SET deleted_at = ? WHERE id = ?", (db_time(now), record_id))
        else:
            known = wire.wire_columns(entity)
            mine = {item["field"]: item["mine"] for item in conflict.fields if item["field"] in known}
            if mine:
                names = list(mine)
                current = conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE id = ?", (record_id,)).fetchone()
                fields = {name: (old, wire.to_python(entity, name, mine[name]))
                          for name, old in zip(names, current)}
                conn.execute(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                             (*(wire.to_db(entity, n, mine[n]) for n in names), record_id))
                change = Change(entity, record_id, "update", fields)
        if change is not None:
            conn.execute(f"UPDATE {table} SET updated_at = ?, revision = coalesce(revision, 0) + 1 WHERE id = ?",
                         (db_time(now), record_id))
            tx.record([change], deliver=True)
        conn.execute("DELETE FROM sync_conflicts WHERE id = ?", (conflict.id,))


def take_theirs(services, conflict_id: int) -> None:
    """Drop the local change; the row shows the server's value (no mutation is sent)."""
    conflict = _conflict(services.db, conflict_id)
    with services.db.transaction(actor=SYNC_ACTOR, audit_action="take-theirs", replicate=False,
                                 foreign_keys=False) as scope:
        conn = scope.tx.dbapi_connection
        _require_known(conn, conflict.entity)
        if conflict.kind == "deleted":
            local_writes.tombstone(conn, conflict.entity, conflict.record_id, db_time(utcnow()))
        elif conflict.kind == "edited":
            local_writes.restore(conn, conflict.entity, conflict.record_id)
            if conflict.theirs:
                local_writes.write_fields(conn, conflict.entity, conflict.record_id, conflict.theirs)
        else:
            theirs = {item["field"]: item["theirs"] for item in conflict.fields}
            local_writes.write_fields(conn, conflict.entity, conflict.record_id, theirs)
            for name in theirs:
                local_writes.strip_pending_field(conn, conflict.record_id, name)
        conn.execute("DELETE FROM sync_conflicts WHERE id = ?", (conflict_id,))


def _problem(conn, mutation_id: int) -> outbox.OutboxEntry:
    for entry in outbox.problems(conn):
        if entry.mutation_id == mutation_id:
            return entry
    raise NotFound("sync problem", str(mutation_id))


def resend(services, mutation_id: int) -> int:
    """Queue a rejected mutation again with the record's current values; returns the new mutation id."""
    with services.db.transaction(actor=SYNC_ACTOR, audit_action="resend", replicate=False) as scope:
        conn = scope.tx.dbapi_connection
        entry = _problem(conn, mutation_id)
        table = wire.table_of(entry.entity).name
        row = conn.execute(f"SELECT version FROM {table} WHERE id = ?", (entry.record_id,)).fetchone()
        current = wire.record_wire(conn, entry.entity, entry.record_id) or {}
        if entry.op == "create":
            fields = {name: [None, value] for name, value in current.items()}
        elif entry.op == "update":
            fields = {name: [pair[0], current.get(name)] for name, pair in entry.fields.items()}
        else:
            fields = {}
        cursor = conn.execute(
            "INSERT INTO sync_outbox (entity, record_id, op, fields, base_version, created_at, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.entity, entry.record_id, entry.op, json.dumps(fields), row[0] if row else entry.base_version,
             db_time(utcnow()), outbox.PENDING))
        conn.execute("DELETE FROM sync_outbox WHERE id = ?", (mutation_id,))
        return cursor.lastrowid


def discard(services, mutation_id: int) -> None:
    """Drop a rejected mutation and undo it locally: the row goes back to what the server has."""
    with services.db.transaction(actor=SYNC_ACTOR, audit_action="discard", replicate=False,
                                 foreign_keys=False) as scope:
        conn = scope.tx.dbapi_connection
        entry = _problem(conn, mutation_id)
        if entry.op == "create":
            local_writes.remove(conn, entry.entity, [entry.record_id])  # the server never had it
        elif entry.op == "delete":
            local_writes.restore(conn, entry.entity, entry.record_id)
        else:
            local_writes.write_fields(conn, entry.entity, entry.record_id,
                                      {name: pair[0] for name, pair in entry.fields.items()})
        conn.execute("DELETE FROM sync_outbox WHERE id = ?", (mutation_id,))
