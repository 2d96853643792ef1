"""Applying one pulled page: the page and its cursor commit in one transaction.

For each change, the record's server version decides: a change whose version is
not above the local one is old news and skipped (no wall clock ever decides).
Then:

* ``upsert`` of a row without unacknowledged local mutations: the server's record
  replaces the local one (new rows take the bulk path: one ``executemany`` and,
  for large pages, the FTS index filled in one statement, as an import does);
* ``upsert`` of a row with pending (or rejected) local mutations is *rebased*:
  fields the rep changed locally keep the local value, every other field takes
  the server's, and the row moves to the server's version. A field the server
  changed too, to another value than the rep's, is a conflict: it is stored for
  the rep (mine / theirs / base), taken out of the pending mutation so that the
  push cannot overwrite the server's value silently, and the row shows theirs;
* ``tombstone``: the row is marked deleted (unless the rep has pending edits:
  then it stays, and the push gets the server's "deleted" conflict to resolve);
* ``remove``: the record left this user's scope, so the local row goes, with no
  tombstone and no outbox row.

All writes run with ``replicate=False`` (nothing pulled is pushed back) and
without foreign-key checks (a contact may arrive before its company, or refer
to a company outside this user's scope).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from crm_desktop.domain.actor import Actor
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time
from crm_desktop.storage.engine import Database
from crm_desktop.storage.models import MODELS
from crm_desktop.sync import local_writes, outbox, state
from crm_desktop.sync import values as wire
from crm_desktop.sync.protocol import ChangeKind, PulledChange, PullResponse

log = logging.getLogger(__name__)

SYNC_ACTOR = Actor.sync()
#: a page with at least this many new rows of one table fills the search index in one statement
BULK_INDEX_ROWS = 200


@dataclass
class PageResult:
    applied: int = 0
    skipped: int = 0
    removed: int = 0
    conflicts: int = 0
    entities: set[str] = field(default_factory=set)


class PullApplier:
    def __init__(self, db: Database):
        self.db = db

    def apply(self, page: PullResponse) -> PageResult:
        """Apply ``page`` and store its cursor, in one transaction."""
        result = PageResult()
        with self.db.transaction(actor=SYNC_ACTOR, audit_action="sync-pull", replicate=False,
                                 foreign_keys=False) as scope:
            conn = scope.tx.dbapi_connection
            groups: dict[str, list[PulledChange]] = {}
            for change in page.changes:
                if change.entity in MODELS:
                    groups.setdefault(change.entity, []).append(change)
                else:
                    log.warning("pulled a change of unknown entity %r; skipped", change.entity)
            for entity, changes in groups.items():
                self._apply_entity(conn, entity, changes, result)
            state.put(conn, state.CURSOR, page.cursor)
            if result.applied or result.removed:
                conn.execute(
                    "INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, changes) "
                    "VALUES (?, ?, ?, ?, NULL, NULL, ?)",
                    (db_time(utcnow()), SYNC_ACTOR.kind.value, SYNC_ACTOR.name, "sync-pull",
                     json.dumps({"applied": result.applied, "removed": result.removed,
                                 "conflicts": result.conflicts, "cursor": page.cursor})))
        return result

    # -- one entity ---------------------------------------------------------------------------

    def _apply_entity(self, conn, entity: str, changes: list[PulledChange], result: PageResult) -> None:
        table = wire.table_of(entity).name
        ids = [c.id for c in changes]
        local: dict[str, int] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            local.update(conn.execute(f"SELECT id, version FROM {table} WHERE id IN ({', '.join('?' * len(chunk))})",
                                      chunk).fetchall())
        pending = outbox.for_records(conn, ids) if _outbox_nonempty(conn) else {}
        now = db_time(utcnow())
        inserts: list[PulledChange] = []
        updates: list[PulledChange] = []
        removes: list[str] = []
        for change in changes:
            if change.kind is ChangeKind.REMOVE:
                if change.id in local:
                    removes.append(change.id)
                continue
            version = change.version or 0
            if change.id in local and local[change.id] >= version:
                result.skipped += 1
                continue
            if change.kind is ChangeKind.TOMBSTONE:
                if change.id in local:
                    if change.id not in pending:
                        local_writes.tombstone(conn, entity, change.id, now)
                    conn.execute(f"UPDATE {table} SET version = ? WHERE id = ?", (version, change.id))
                    result.applied += 1
                continue
            if change.record is None:
                continue
            if change.id in pending and change.id in local:
                result.conflicts += self._rebase(conn, entity, change, pending[change.id])
                result.applied += 1
            elif change.id in local:
                updates.append(change)
            else:
                inserts.append(change)
        if removes:
            local_writes.remove(conn, entity, removes)
            result.removed += len(removes)
        if inserts:
            self._insert(conn, entity, inserts)
            result.applied += len(inserts)
        if updates:
            self._update(conn, entity, updates)
            result.applied += len(updates)
        if result.applied or removes:
            result.entities.add(entity)

    def _row(self, conn, entity: str, change: PulledChange, record: dict[str, Any]) -> dict[str, Any]:
        values = {name: wire.to_db(entity, name, record.get(name)) for name in wire.wire_columns(entity)}
        values.update(local_writes.keys_for(conn, entity, change.id, record))
        values["created_at"] = wire.to_db(entity, "created_at", record.get("created_at")) or db_time(utcnow())
        values["updated_at"] = wire.to_db(entity, "updated_at", record.get("updated_at")) or values["created_at"]
        values["version"] = change.version or 0
        return values

    def _insert(self, conn, entity: str, changes: list[PulledChange]) -> None:
        from crm_desktop.services.bulk_fts import DeferredIndex

        table = wire.table_of(entity).name
        rows = [self._row(conn, entity, c, c.record) for c in changes]
        names = ["id", *rows[0].keys(), "revision", "deleted_at"]
        params = [(c.id, *row.values(), 0, None) for c, row in zip(changes, rows)]
        deferred = DeferredIndex(conn, table) if len(changes) >= BULK_INDEX_ROWS and _has_fts(conn, table) else None
        try:
            conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             params)
        finally:
            if deferred is not None:
                deferred.close()
        self._tags(conn, entity, changes)

    def _update(self, conn, entity: str, changes: list[PulledChange]) -> None:
        table = wire.table_of(entity).name
        rows = [self._row(conn, entity, c, c.record) for c in changes]
        names = [*rows[0].keys(), "deleted_at"]
        conn.executemany(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                         [(*row.values(), None, c.id) for c, row in zip(changes, rows)])
        self._tags(conn, entity, changes)

    def _tags(self, conn, entity: str, changes: list[PulledChange]) -> None:
        if wire.has_tags(entity):
            local_writes.set_tags(conn, entity, [(c.id, list(c.record.get("tags") or [])) for c in changes])

    # -- rebase -------------------------------------------------------------------------------

    def _rebase(self, conn, entity: str, change: PulledChange, entries: list[outbox.OutboxEntry]) -> int:
        """Move a row with unacknowledged local mutations to the server's version; returns conflicts."""
        server = dict(change.record or {})
        mine = wire.record_wire(conn, entity, change.id) or {}
        first_base: dict[str, Any] = {}
        for entry in entries:
            for name, (base, _new) in entry.fields.items():
                first_base.setdefault(name, base)
        deleted_here = any(e.op == "delete" for e in entries)
        conflicts = []
        final = dict(server)
        for name, base in first_base.items():
            theirs, my_value = server.get(name), mine.get(name)
            if theirs == base or theirs == my_value:
                final[name] = my_value  # the server did not change it, or already has the rep's value
            else:
                conflicts.append({"field": name, "base": base, "mine": my_value, "theirs": theirs})
        for conflict in conflicts:
            local_writes.strip_pending_field(conn, change.id, conflict["field"])
        if conflicts:
            conn.execute("INSERT INTO sync_conflicts (entity, record_id, kind, fields, theirs, version, mutation_id, "
                         "created_at) VALUES (?, ?, 'fields', ?, ?, ?, NULL, ?)",
                         (entity, change.id, json.dumps(conflicts), json.dumps(server), change.version,
                          db_time(utcnow())))
        row = self._row(conn, entity, change, final)
        row.pop("created_at")
        if first_base or deleted_here:
            row.pop("updated_at")  # the local edit is newer than the server's stamp
        table = wire.table_of(entity).name
        conn.execute(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in row)} WHERE id = ?",
                     (*row.values(), change.id))
        if wire.has_tags(entity):
            local_writes.set_tags(conn, entity, [(change.id, list(final.get("tags") or []))])
        # what is still pending now starts from the server's version
        conn.execute("UPDATE sync_outbox SET base_version = ? WHERE record_id = ? AND op = 'update'",
                     (change.version or 0, change.id))
        return len(conflicts)


def _outbox_nonempty(conn) -> bool:
    return conn.execute("SELECT 1 FROM sync_outbox LIMIT 1").fetchone() is not None


def _has_fts(conn, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                        (f"{table}_fts_ai",)).fetchone() is not None
