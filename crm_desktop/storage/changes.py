"""The sync columns and the :class:`Change` of every write, made in one place.

Every synced row (:class:`~crm_desktop.storage.base.SyncColumns`) is stamped
and turned into a :class:`Change` here, and nowhere else:

* ORM writes: :func:`track_flush`, a ``before_flush`` listener on
  :class:`WriteSession`. New rows get ``id``, ``created_at``, ``updated_at``,
  ``version`` 0, ``revision`` 1, and ``owner_id``/``team_id`` from the actor
  when they have none; a changed row gets ``updated_at`` and ``revision + 1``.
* Bulk writes (import, demo data): :func:`insert_synced_rows` (stamps,
  ``executemany`` and the changes in one call) and :class:`BulkStamp` (the
  same stamps as a tuple, for a writer that builds its own rows).

Each change goes to the open write transaction
(:mod:`crm_desktop.storage.transaction`), which hands it, in batches, to the
change sinks (audit log, sync outbox). A flush of a synced row outside a write
transaction is refused, so nothing writes a synced row without its change.

``version`` is the server's version of the row (0: never synced) and only sync
changes it; ``revision`` counts local writes (docs/architecture.md, "Sync columns").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, overload

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from crm_desktop.domain.ids import uuid7, uuid7_many
from crm_desktop.storage.base import SyncColumns, utcnow

if TYPE_CHECKING:
    from crm_desktop.domain.actor import Actor
    from crm_desktop.storage.transaction import WriteTransaction

#: columns stamped here, never part of a change's fields
STAMPED = frozenset({"id", "created_at", "updated_at", "version", "revision"})
#: the stamp columns of a bulk insert, in the order :meth:`BulkStamp.values` returns them
STAMP_COLUMNS = ("created_at", "updated_at", "version", "revision", "owner_id", "team_id")


@dataclass(frozen=True)
class Change:
    """One change to one record. ``fields`` maps each changed field to ``(old, new)``."""

    entity: str
    record_id: str
    op: str  # create | update | delete
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedBatch:
    """Changes one actor made, with the audit action they are logged under (None: each one's ``op``).

    ``changes`` may be a :class:`BulkChanges` (one bulk insert): a sink that can, handles it
    set-based; iterating it gives the same :class:`Change` objects as any other batch.
    """

    changes: Sequence[Change]
    actor: "Actor | None"
    audit_action: str | None = None
    #: False for a write that mirrors the server (sync's pull): audited, but no change listener
    #: (the outbox) gets it, so it is never sent back
    replicate: bool = True


class SyncRowOutsideTransaction(RuntimeError):
    """A synced row was flushed by a session that is not part of a write transaction."""


class WriteSession(Session):
    """The ORM session of a write transaction; its flushes stamp and record synced rows."""


def db_time(value: datetime) -> str:
    """The text SQLAlchemy's ``DateTime`` stores on SQLite (naive UTC), for DBAPI bulk writes."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _derived(name: str) -> bool:
    """Columns computed from other fields (search/sort keys): never in a change."""
    return name.endswith("_key")


def entity_of(obj_or_model: Any) -> str:
    from crm_desktop.storage.models import ENTITY_OF_TABLE

    name = obj_or_model.__table__.name
    entity = ENTITY_OF_TABLE.get(name)
    if entity is None:  # a synced plugin model (plugin_api.models.SyncedModel) carries its entity
        entity = getattr(obj_or_model, "__crm_sync_entity__", None)
        if entity is None:
            raise KeyError(name)
    return entity


def is_synced(obj: Any) -> bool:
    """A core synced row, or a row of a synced plugin model."""
    return isinstance(obj, SyncColumns) or getattr(type(obj), "__crm_sync_entity__", None) is not None


# -- ORM path ---------------------------------------------------------------------------


@event.listens_for(WriteSession, "before_flush")
def track_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Stamp every new or changed synced row of this flush and record its change."""
    new = [o for o in session.new if is_synced(o)]
    dirty = [o for o in session.dirty if is_synced(o)]
    gone = [o for o in session.deleted if is_synced(o)]
    if not (new or dirty or gone):
        return
    tx: WriteTransaction | None = session.info.get("write_transaction")
    if tx is None:
        raise SyncRowOutsideTransaction(
            "synced rows can only be written inside a write transaction (Database.transaction() / "
            "services.unit_of_work()), so that each write produces its change")
    actor = tx.scope.actor
    now = utcnow()
    changes = [_created(obj, now, actor) for obj in new]
    changes.extend(c for c in (_updated(obj, now) for obj in dirty) if c is not None)
    # a hard delete of a synced row (only a local cleanup should do this): recorded like a tombstone
    changes.extend(Change(entity_of(obj), obj.id, "delete", {"deleted_at": (obj.deleted_at, now)})
                   for obj in gone)
    tx.record(changes)


def _created(obj: Any, now: datetime, actor: "Actor | None") -> Change:
    if obj.id is None:
        obj.id = uuid7()
    if obj.created_at is None:
        obj.created_at = now
    if obj.updated_at is None:
        obj.updated_at = obj.created_at
    if obj.version is None:
        obj.version = 0
    obj.revision = 1
    if actor is not None:
        if obj.owner_id is None and actor.user_id:
            obj.owner_id = actor.user_id
        if obj.team_id is None and actor.team_id:
            obj.team_id = actor.team_id
    state = inspect(obj)
    fields: dict[str, tuple[Any, Any]] = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in STAMPED or _derived(key):
            continue
        value = state.dict.get(key)
        if value is None:
            value = _scalar_default(attr)
            if value is not None:
                setattr(obj, key, value)  # so the change says what the INSERT's default will write
        if value is not None:
            fields[key] = (None, value)
    if "tags" in state.dict and obj.tags:
        fields["tags"] = (None, sorted(t.name for t in obj.tags))
    return Change(entity_of(obj), obj.id, "create", fields)


def _scalar_default(attr: Any) -> Any:
    default = attr.columns[0].default
    return default.arg if default is not None and default.is_scalar else None


def _updated(obj: Any, now: datetime) -> Change | None:
    state = inspect(obj)
    fields: dict[str, tuple[Any, Any]] = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in STAMPED or _derived(key):
            continue
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old != new:
            fields[key] = (old, new)
    if "tags" in state.mapper.relationships:
        history = state.attrs.tags.history
        if history.has_changes():
            old_names = sorted(t.name for t in (*history.unchanged, *history.deleted))
            new_names = sorted(t.name for t in (*history.unchanged, *history.added))
            if old_names != new_names:
                fields["tags"] = (old_names, new_names)
    if not fields:
        return None
    if not state.attrs.updated_at.history.has_changes():  # sync may set it from the server: keep that
        obj.updated_at = now
    obj.revision = (obj.revision or 0) + 1
    deleted = fields.get("deleted_at")
    op = "delete" if deleted is not None and deleted[0] is None and deleted[1] is not None else "update"
    return Change(entity_of(obj), obj.id, op, fields)


# -- bulk path -----------------------------------------------------------------------------


class BulkStamp:
    """The stamp columns (:data:`STAMP_COLUMNS`) of rows a bulk writer inserts itself, as DB text.

    The same rules as the ORM path: ``created_at = updated_at`` (now unless given), ``version`` 0,
    ``revision`` 1, owner and team from the actor unless the row has its own.
    """

    def __init__(self, actor: "Actor | None", now: datetime | None = None):
        self.now = db_time(now or utcnow())
        self.owner_id = actor.user_id if actor is not None else None
        self.team_id = actor.team_id if actor is not None else None

    def values(self, created_at: str | None = None, owner_id: str | None = None,
               team_id: str | None = None) -> tuple:
        at = created_at or self.now
        return at, at, 0, 1, owner_id or self.owner_id, team_id or self.team_id


def insert_synced_rows(tx: "WriteTransaction", model: Any, rows: Sequence[dict[str, Any]], *,
                       audit_action: str | None = None,
                       change_extras: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None,
                       audit_details: Mapping[str, Any] | None = None) -> "BulkChanges":
    """Insert ``rows`` (column -> value dicts; ``id`` optional, filled in here) of ``model``: the
    dict form of :func:`insert_synced_columns`, which see."""
    if not rows:
        return BulkChanges.empty(entity_of(model))
    columns: list[str] = []
    for values in rows:
        for name in values:
            if name not in columns and not name.startswith("\0"):
                columns.append(name)
    if "id" not in columns:
        columns.insert(0, "id")
    ids = new_ids(sum(1 for values in rows if values.get("id") is None))
    taken = 0
    for values in rows:
        if values.get("id") is None:
            values["id"] = ids[taken]
            taken += 1
    params = [tuple(values.get(c) for c in columns) for values in rows]
    return insert_synced_columns(tx, model, columns, params, audit_action=audit_action, change_extras=change_extras,
                                 audit_details=audit_details)


def new_ids(count: int) -> list[str]:
    """``count`` new UUIDv7 ids in creation order (for bulk writers that stamp ids themselves)."""
    return uuid7_many(count)


def _literal(value: Any) -> str:
    """A constant as SQL text (stamps: text, integers or NULL), so executemany binds only row values."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def insert_synced_columns(tx: "WriteTransaction", model: Any, columns: Sequence[str], params: Sequence[tuple], *,
                          audit_action: str | None = None,
                          change_extras: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None,
                          audit_details: Mapping[str, Any] | None = None) -> "BulkChanges":
    """Insert rows of ``model`` (``params``: one tuple per row, in the order of ``columns``, which
    must include ``id``) with one ``executemany`` in ``tx``, stamped like the ORM path, and record
    one create :class:`Change` per row as one batch for the change sinks (audit log, listeners).

    The stamps are the same for every row of a batch, so they are written as SQL constants and
    the driver binds only the row's own values. ``owner_id``/``team_id`` given as columns win over
    the actor's where they are not NULL. ``change_extras`` adds fields (e.g. ``tags``) to a row's
    change. The changes are a :class:`BulkChanges`: built one by one only if someone reads them
    (a change listener); the audit sink writes one entry for the whole batch (``audit_details``
    added to what it says) and the list of its records (:meth:`BulkChanges.write_audit`).
    Values go to the driver as they are (text, numbers): the bulk paths write DB text already.
    """
    entity = entity_of(model)
    table = model.__table__.name
    if not params:
        return BulkChanges.empty(entity)
    columns = list(columns)
    stamp = BulkStamp(tx.scope.actor)
    stamped = dict(zip(STAMP_COLUMNS, stamp.values()))
    names = list(columns)
    exprs = ["?"] * len(columns)
    for name, value in stamped.items():
        if name in columns:
            if name in ("owner_id", "team_id") and value is not None:
                exprs[columns.index(name)] = f"coalesce(?, {_literal(value)})"
            continue
        names.append(name)
        exprs.append(_literal(value))
    conn = tx.dbapi_connection
    before = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]
    conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(exprs)})", params)
    changes = BulkChanges(entity, table, columns, params, stamped, change_extras or {}, before, audit_details)
    tx.record(changes, audit_action=audit_action, deliver=True)
    return changes


class BulkChanges(Sequence[Change]):
    """The create :class:`Change` of every row of one bulk insert, made on demand.

    A bulk insert of 200k rows would spend seconds building change objects; the sinks that can
    handle the batch set-based instead (the audit: :meth:`write_audit`; the sync outbox: one
    compact row per record), and a change listener that iterates gets each :class:`Change`
    exactly as the row-by-row path would have made it.
    """

    def __init__(self, entity: str, table: str, columns: Sequence[str], params: Sequence[tuple],
                 stamped: Mapping[str, Any], extras: Mapping[str, Mapping[str, tuple[Any, Any]]],
                 rowid_before: int | None, audit_details: Mapping[str, Any] | None = None):
        self.entity = entity
        self.audit_details = dict(audit_details or {})
        self.table = table
        self.columns = tuple(columns)
        self.params = params
        self.stamped = stamped
        self.extras = extras
        self.rowid_before = rowid_before
        self._id_at = self.columns.index("id") if "id" in self.columns else None
        # the fields a change shows: no stamps, no derived keys (owner/team come from the stamps)
        self._fields = [(i, c) for i, c in enumerate(self.columns)
                        if c not in STAMPED and not _derived(c) and c not in ("owner_id", "team_id")]

    def field_columns(self) -> list[str]:
        """The columns a row's change shows, in its order (``owner_id``/``team_id`` last, as stored:
        the row's own or the stamp); a NULL is left out of the change."""
        return [c for _, c in self._fields] + ["owner_id", "team_id"]

    @classmethod
    def empty(cls, entity: str) -> "BulkChanges":
        return cls(entity, "", ("id",), (), {}, {}, None)

    def __len__(self) -> int:
        return len(self.params)

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if isinstance(index, slice):
            return [self._change(row) for row in self.params[index]]
        return self._change(self.params[index])

    def __iter__(self) -> Iterator[Change]:
        change = self._change
        for row in self.params:
            yield change(row)

    def _owner(self, row: tuple, name: str) -> Any:
        if name in self.columns:
            value = row[self.columns.index(name)]
            if value is not None:
                return value
        return self.stamped.get(name)

    def _change(self, row: tuple[Any, ...]) -> Change:
        if self._id_at is None:  # (as indexing the row with None would)
            raise TypeError(f"a bulk insert into {self.table} without an id column has no changes")
        record_id = row[self._id_at]
        fields = {c: (None, row[i]) for i, c in self._fields if row[i] is not None}
        for name in ("owner_id", "team_id"):
            value = self._owner(row, name)
            if value is not None:
                fields[name] = (None, value)
        extra = self.extras.get(record_id)
        if extra:
            fields.update(extra)
        return Change(self.entity, record_id, "create", fields)

    # -- the audit entries, set-based ---------------------------------------------------------

    def audit_rows_in_place(self, conn: Any) -> bool:
        """True if the inserted rows are exactly the table's rows after ``rowid_before``, so the
        audit entries can be made from them in SQL (always, unless the table has no rowid)."""
        if self.rowid_before is None or not self.params:
            return False
        top = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {self.table}").fetchone()[0]
        return top - self.rowid_before == len(self.params)

    def write_audit(self, conn: Any, at: str, actor_kind: str, actor_name: str, action: str, *,
                    on_behalf_of: str | None = None) -> int:
        """The audit of the whole batch: one ``audit_entries`` row (``record_id`` NULL; ``changes``
        says ``{"records": N, "first_id": ..., "last_id": ..., **audit_details}``) and one
        ``audit_entry_records`` row per inserted record, filled by one ``INSERT ... SELECT`` in row
        order. Returns the entry's id.

        The field values are not copied into the log: they are the record's own values as it was
        created, and every later local change is audited with its old and new values. (Before
        this, an entry of ~450 bytes per record, its fields as JSON, was half of what a large
        import wrote; bench/README.md.)"""
        before = self.rowid_before
        assert before is not None, "write_audit follows audit_rows_in_place"
        first = conn.execute(f"SELECT id FROM {self.table} WHERE rowid = ?", (before + 1,)).fetchone()
        last = conn.execute(f"SELECT id FROM {self.table} WHERE rowid = ?",
                            (before + len(self.params),)).fetchone()
        details = {"records": len(self.params), "first_id": first[0], "last_id": last[0], **self.audit_details}
        entry_id = conn.execute(
            "INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, changes, on_behalf_of) "
            "VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
            (at, actor_kind, actor_name, action, self.entity, json.dumps(details, ensure_ascii=False),
             on_behalf_of)).lastrowid
        conn.execute(
            "INSERT INTO audit_entry_records (record_id, entry_id) "
            f"SELECT r.id, ? FROM {self.table} r WHERE r.rowid > ? AND r.rowid <= ? ORDER BY r.rowid",
            (entry_id, before, before + len(self.params)))
        return entry_id


class ChangeLog(Sequence[Change]):
    """The changes of a scope: batches kept as they came (a :class:`BulkChanges` stays unbuilt)."""

    def __init__(self) -> None:
        self._batches: list[Sequence[Change]] = []
        self._len = 0

    def extend(self, changes: Sequence[Change]) -> None:
        if len(changes):
            self._batches.append(changes)
            self._len += len(changes)

    def append(self, change: Change) -> None:
        self.extend([change])

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Change]:
        for batch in self._batches:
            yield from batch

    @overload
    def __getitem__(self, index: int) -> Change: ...

    @overload
    def __getitem__(self, index: slice) -> list[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | list[Change]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        for batch in self._batches:
            if index < len(batch):
                return batch[index]
            index -= len(batch)
        raise IndexError(index)
