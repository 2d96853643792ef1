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

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from crm_desktop.domain.ids import uuid7
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
class RecordedChange:
    """A change with who made it and the audit action it is logged under (None: its ``op``)."""

    change: Change
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

    return ENTITY_OF_TABLE[obj_or_model.__table__.name]


# -- ORM path ---------------------------------------------------------------------------


@event.listens_for(WriteSession, "before_flush")
def track_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Stamp every new or changed synced row of this flush and record its change."""
    new = [o for o in session.new if isinstance(o, SyncColumns)]
    dirty = [o for o in session.dirty if isinstance(o, SyncColumns)]
    gone = [o for o in session.deleted if isinstance(o, SyncColumns)]
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
                       change_extras: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None) -> list[Change]:
    """Insert ``rows`` (column -> value dicts; ``id`` optional) of ``model`` with one ``executemany``
    in ``tx``, stamped like the ORM path; record one create :class:`Change` per row and hand them to
    the change sinks as one batch. ``change_extras`` adds fields (e.g. ``tags``) to a row's change.
    Values go to the driver as they are (text, numbers): the bulk paths write DB text already.
    """
    if not rows:
        return []
    stamp = BulkStamp(tx.scope.actor)
    columns: list[str] = []
    for values in rows:
        for name in values:
            if name not in columns and name not in STAMP_COLUMNS and not name.startswith("\0"):
                columns.append(name)
    if "id" not in columns:
        columns.insert(0, "id")
    names = [*columns, *STAMP_COLUMNS]
    entity = entity_of(model)
    extras = change_extras or {}
    params = []
    changes = []
    for values in rows:
        if values.get("id") is None:
            values["id"] = uuid7()
        stamps = stamp.values(None, values.get("owner_id"), values.get("team_id"))
        params.append((*(values.get(c) for c in columns), *stamps))
        fields = {k: (None, v) for k, v in values.items()
                  if v is not None and k not in STAMPED and not _derived(k) and not k.startswith("\0")}
        for name, value in zip(STAMP_COLUMNS[4:], stamps[4:]):
            if value is not None:
                fields[name] = (None, value)
        fields.update(extras.get(values["id"], {}))
        changes.append(Change(entity, values["id"], "create", fields))
    tx.dbapi_connection.executemany(
        f"INSERT INTO {model.__table__.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        params)
    tx.record(changes, audit_action=audit_action, deliver=True)
    return changes

