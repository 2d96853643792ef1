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
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

from crm_desktop.domain.actor import Actor
from crm_desktop.storage import plugin_sync
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time
from crm_desktop.storage.engine import Database
from crm_desktop.storage.models import MODELS
from crm_desktop.sync import local_writes, outbox, state
from crm_desktop.sync import values as wire
from crm_desktop.sync.protocol import ChangeKind, PulledChange, PullResponse

if TYPE_CHECKING:
    from pydantic import JsonValue

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
            parked: list[PulledChange] = []
            # the synced plugin tables of this database (not of the process: another home may have them)
            local_plugin = {t.entity for t in plugin_sync.load(conn)}
            for change in page.changes:
                if change.entity in MODELS or change.entity in local_plugin:
                    groups.setdefault(change.entity, []).append(change)
                elif plugin_sync.is_plugin_entity(change.entity):
                    parked.append(change)  # its plugin is not installed here (yet): kept, not lost
                else:
                    log.warning("pulled a change of unknown entity %r; skipped", change.entity)
            if parked:
                park(conn, parked)
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
        return dict(zip(*self._row_values(conn, entity, change, record)))

    def _row_values(self, conn, entity: str, change: PulledChange,
                    record: dict[str, Any]) -> tuple[list[str], list[Any]]:
        """The local columns of a pulled record and their values: wire fields, derived keys, stamps."""
        keys = local_writes.keys_for(conn, entity, change.id, record)
        names = [*wire.wire_columns(entity), *keys, "created_at", "updated_at", "version"]
        values = wire.row_values_to_db(entity, record)
        values += keys.values()
        created, updated = record.get("created_at"), record.get("updated_at")
        created = wire.db_time_text(created) if isinstance(created, str) and created else db_time(utcnow())
        values += (created, wire.db_time_text(updated) if isinstance(updated, str) and updated else created,
                   change.version or 0)
        return names, values

    def _insert(self, conn, entity: str, changes: list[PulledChange]) -> None:
        from crm_desktop.services.bulk_fts import DeferredIndex

        table = wire.table_of(entity).name
        params = []
        for c in changes:
            columns, values = self._row_values(conn, entity, c, _record(c))
            params.append((c.id, *values, 0, None))
        names = ["id", *columns, "revision", "deleted_at"]
        deferred = DeferredIndex(conn, table) if len(changes) >= BULK_INDEX_ROWS and _has_fts(conn, table) else None
        try:
            conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             params)
        finally:
            if deferred is not None:
                deferred.close()
        if wire.has_tags(entity):  # new rows have no links yet: only add the pulled ones
            link, column = wire.required_tag_link(entity)
            conn.executemany(f"INSERT OR IGNORE INTO {link.name} ({column}, tag_id) VALUES (?, ?)",
                             [(c.id, tag) for c in changes for tag in _tag_ids(_record(c))])

    def _update(self, conn, entity: str, changes: list[PulledChange]) -> None:
        """Rows whose content changed are rewritten (the search triggers re-index them); rows that
        already hold the pulled content — typically this device's own pushed edits coming back
        with the server's version — only take the server's stamps, with the search index's update
        trigger suspended for them when there are many, since their indexed text did not change."""
        table = wire.table_of(entity).name
        rows = [self._row_values(conn, entity, c, _record(c)) for c in changes]
        names = [*rows[0][0], "deleted_at"]
        # _row_values ends with the stamps (created_at, updated_at, version); the content is the rest
        assert tuple(names[-4:-1]) == ("created_at", "updated_at", "version")
        content = [*names[:-4], "deleted_at"]
        local = _local_rows(conn, table, content, [c.id for c in changes])
        local_tags = _local_tags(conn, entity, [c.id for c in changes]) if wire.has_tags(entity) else None
        rewrite: list[PulledChange] = []
        rewrite_params, stamp_params = [], []
        for change, (_names, values) in zip(changes, rows):
            same = local.get(change.id) == (*values[:-3], None)
            if same and local_tags is not None:
                same = local_tags.get(change.id, set()) == set(_tag_ids(_record(change)))
            if same:
                stamp_params.append((values[-1], values[-3], values[-2], change.id))
            else:
                rewrite.append(change)
                rewrite_params.append((*values, None, change.id))
        if rewrite:
            conn.executemany(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                             rewrite_params)
            self._tags(conn, entity, rewrite)
        if stamp_params:
            with _TriggerSuspended(conn, f"{table}_fts_au", len(stamp_params) >= BULK_INDEX_ROWS):
                conn.executemany(f"UPDATE {table} SET version = ?, created_at = ?, updated_at = ? WHERE id = ?",
                                 stamp_params)

    def _tags(self, conn, entity: str, changes: list[PulledChange]) -> None:
        if wire.has_tags(entity):
            local_writes.set_tags(conn, entity, [(c.id, list(_tag_ids(_record(c)))) for c in changes])

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
            local_writes.set_tags(conn, entity, [(change.id, list(_tag_ids(final)))])
        # what is still pending now starts from the server's version
        conn.execute("UPDATE sync_outbox SET base_version = ? WHERE record_id = ? AND op = 'update'",
                     (change.version or 0, change.id))
        return len(conflicts)


def park(conn, changes: list[PulledChange]) -> None:
    """Keep pulled changes of plugin entities this database does not know (newest version per record)."""
    conn.executemany(
        "INSERT INTO sync_parked_changes (entity, record_id, version, change) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (entity, record_id) DO UPDATE SET version = excluded.version, change = excluded.change "
        "WHERE excluded.version >= sync_parked_changes.version",
        [(c.entity, c.id, c.version or 0, c.model_dump_json()) for c in changes])


def publish_plugin_tables(db: Database, tables: list[plugin_sync.SyncedTable]) -> int:
    """Make synced plugin tables known to sync (kept in ``sync_plugin_tables``) and apply the changes
    pulled for them while they were unknown; returns how many parked changes were applied.

    The plugin host calls it when it loads a plugin with synced models, before the plugin's code
    can write; one transaction, with ``replicate=False`` (what was pulled is not pushed back)."""
    if not tables:
        return 0
    applied = 0
    with db.transaction(actor=SYNC_ACTOR, audit_action="sync-pull", replicate=False,
                        foreign_keys=False) as scope:
        conn = scope.tx.dbapi_connection
        for table in tables:
            plugin_sync.store(conn, table)
        entities = [t.entity for t in tables]
        rows = conn.execute(
            f"SELECT change FROM sync_parked_changes WHERE entity IN ({', '.join('?' * len(entities))}) "
            "ORDER BY entity, version", entities).fetchall()
        if rows:
            applier = PullApplier(db)
            result = PageResult()
            groups: dict[str, list[PulledChange]] = {}
            for (text,) in rows:
                change = PulledChange.model_validate_json(text)
                groups.setdefault(change.entity, []).append(change)
            for entity, changes in groups.items():
                applier._apply_entity(conn, entity, changes, result)
            conn.execute(f"DELETE FROM sync_parked_changes WHERE entity IN ({', '.join('?' * len(entities))})",
                         entities)
            applied = result.applied
    return applied


def _record(change: PulledChange) -> dict[str, JsonValue]:
    """The record of a pulled upsert (``apply`` leaves out the changes without one)."""
    assert change.record is not None, "only upserts with a record are written"
    return change.record


def _tag_ids(record: Mapping[str, Any]) -> Sequence[str]:
    """The ``tags`` of a wire record: a list of tag ids, or nothing (protocol.py, docs/sync.md)."""
    return cast("Sequence[str]", record.get("tags") or ())


def _local_rows(conn, table: str, names: list[str], ids: list[str]) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for row in conn.execute(f"SELECT id, {', '.join(names)} FROM {table} "
                                f"WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
            out[row[0]] = tuple(row[1:])
    return out


def _local_tags(conn, entity: str, ids: list[str]) -> dict[str, set[str]]:
    link, column = wire.required_tag_link(entity)
    out: dict[str, set[str]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        for record_id, tag_id in conn.execute(f"SELECT {column}, tag_id FROM {link.name} "
                                              f"WHERE {column} IN ({', '.join('?' * len(chunk))})", chunk):
            out.setdefault(record_id, set()).add(tag_id)
    return out


class _TriggerSuspended:
    """Drop a trigger inside the open write transaction and put it back, byte for byte, on exit
    (as :class:`~crm_desktop.services.bulk_fts.DeferredIndex` does; a rollback restores it too).
    For statements that cannot change what the trigger maintains."""

    def __init__(self, conn, name: str, active: bool = True):
        self.conn, self.name, self.sql = conn, name, None
        if active:
            row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                               (name,)).fetchone()
            self.sql = row[0] if row else None

    def __enter__(self):
        if self.sql:
            self.conn.execute(f"DROP TRIGGER {self.name}")
        return self

    def __exit__(self, *exc):
        if self.sql:
            self.conn.execute(self.sql)
        return False


def _outbox_nonempty(conn) -> bool:
    return conn.execute("SELECT 1 FROM sync_outbox LIMIT 1").fetchone() is not None


def _has_fts(conn, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                        (f"{table}_fts_ai",)).fetchone() is not None
