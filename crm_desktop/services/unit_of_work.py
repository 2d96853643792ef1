"""The one path every write takes (DESIGN.md, Sync: outbox in the same transaction).

A :class:`UnitOfWork` is a scope of the thread's write transaction
(:meth:`Database.transaction`) with an actor: the outermost one is the
``BEGIN IMMEDIATE`` transaction, one opened inside it is a savepoint, so a
service write called inside an open unit of work joins it. Services only
change rows; storage stamps the sync columns and builds each :class:`Change`
(``storage/changes.py``). :class:`ChangeDelivery` writes the audit entries and
hands each batch of changes to the change listeners (sync's outbox) in the
same transaction. Domain events queued with :meth:`UnitOfWork.publish_after_commit`
are published only after the outermost commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any, Callable, Iterator, Literal, Sequence

from sqlalchemy.orm import Session

from crm_desktop.domain.actor import Actor
from crm_desktop.services.events import Event, EventBus
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import BulkChanges, Change, RecordedBatch
from crm_desktop.storage.dbapi import sqlite_connection
from crm_desktop.storage.engine import Database
from crm_desktop.storage.transaction import Scope, TransactionScope, WriteTransaction

log = logging.getLogger(__name__)

__all__ = ["AuditWriter", "Change", "ChangeDelivery", "ChangeListener", "UnitOfWork", "install_sinks", "plain"]

#: ``listener(session, changes, actor)``: a batch of changes one actor made, inside the transaction
#: (``actor`` None: a transaction opened without one, ``db.transaction()``).
#: It may write (``session.execute(insert(...))``); it must not raise for a change it does not handle.
ChangeListener = Callable[[Session, Sequence[Change], "Actor | None"], None]

#: one row of ``audit_entries`` as :class:`AuditWriter` inserts it: at, actor kind, actor name,
#: action, entity, record id, changes (JSON), on behalf of
_AuditRow = tuple[str, str, str, str, str, str, str, "str | None"]


def plain(value: Any) -> Any:
    """A JSON-friendly form of a field value, for audit entries and events."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _plain_fast(value: Any) -> Any:
    return value if value is None or type(value) is str else plain(value)


class AuditWriter:
    """A change sink: one audit entry per change (one per database, whatever the services).

    A bulk insert's batch (:class:`~crm_desktop.storage.changes.BulkChanges`) is audited as one
    entry for the batch plus the list of the records it created (``BulkChanges.write_audit``);
    every other change is dumped here, with its old and new values, and written with one
    ``executemany``.
    """

    def __call__(self, session: Session, batches: Sequence[RecordedBatch]) -> None:
        at = utcnow().replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # as UTCDateTime stores it
        conn = sqlite_connection(session.connection())
        rows: list[_AuditRow] = []
        for batch in batches:
            actor = batch.actor
            kind, name = (actor.kind.value, actor.name) if actor else ("system", "crm-desktop")
            behalf = actor.on_behalf_of if actor else None
            changes = batch.changes
            if isinstance(changes, BulkChanges) and changes.audit_rows_in_place(conn):
                self._flush(conn, rows)
                changes.write_audit(conn, at, kind, name, batch.audit_action or "create", on_behalf_of=behalf)
                continue
            # plain DBAPI executemany: per-row ORM work would dominate a bulk write
            for change in changes:
                rows.append((at, kind, name, batch.audit_action or change.op, change.entity, change.record_id,
                             json.dumps({k: [_plain_fast(o), _plain_fast(n)] for k, (o, n) in change.fields.items()},
                                        ensure_ascii=False), behalf))
        self._flush(conn, rows)

    @staticmethod
    def _flush(conn: sqlite3.Connection, rows: list[_AuditRow]) -> None:
        if rows:
            conn.executemany("INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, "
                             "changes, on_behalf_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()


class ChangeDelivery:
    """A change sink: each change listener once per batch (consecutive batches of one actor joined).

    A bulk insert's changes reach the listeners as the lazy sequence storage made; a listener that
    iterates it gets ordinary :class:`Change` objects.
    """

    def __init__(self, listeners: list[ChangeListener]):
        self.listeners = listeners

    def __call__(self, session: Session, batches: Sequence[RecordedBatch]) -> None:
        if not self.listeners:
            return
        start = 0
        while start < len(batches):
            actor = batches[start].actor
            end = start
            while end < len(batches) and batches[end].actor == actor:
                end += 1
            # writes that mirror the server (replicate=False) are audited but never reach the outbox
            group = [b for b in batches[start:end] if b.replicate]
            for changes in _joined(group):
                if len(changes):
                    for listener in list(self.listeners):
                        listener(session, changes, actor)
            start = end


def _joined(group: Sequence[RecordedBatch]) -> list[Sequence[Change]]:
    """The changes of consecutive batches joined into one list, except that a bulk insert's
    :class:`BulkChanges` stays a batch of its own, so a listener can still handle it set-based
    (an ORM write flushed just before an import's chunk must not turn the chunk into a list)."""
    out: list[Sequence[Change]] = []
    plain_changes: list[Change] = []
    for batch in group:
        if isinstance(batch.changes, BulkChanges):
            if plain_changes:
                out.append(plain_changes)
                plain_changes = []
            out.append(batch.changes)
        else:
            plain_changes.extend(batch.changes)
    if plain_changes:
        out.append(plain_changes)
    return out


def install_sinks(db: Database, listeners: list[ChangeListener]) -> None:
    """The audit writer (once per database) and a delivery to ``listeners`` (once per list)."""
    if not any(isinstance(s, AuditWriter) for s in db.change_sinks):
        db.change_sinks.insert(0, AuditWriter())
    if not any(isinstance(s, ChangeDelivery) and s.listeners is listeners for s in db.change_sinks):
        db.change_sinks.append(ChangeDelivery(listeners))


class UnitOfWork:
    """``with services.unit_of_work() as uow:`` — a scope of the thread's write transaction."""

    def __init__(self, db: Database, actor: Actor, events: EventBus, *, audit_action: str | None = None):
        self.db = db
        self.actor = actor
        self._events = events
        self._audit_action = audit_action
        self._cm: TransactionScope | None = None
        self.scope: Scope | None = None

    def __enter__(self) -> "UnitOfWork":
        self._cm = self.db.transaction(actor=self.actor, audit_action=self._audit_action)
        self.scope = self._cm.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        cm, self._cm = self._cm, None
        assert cm is not None, "the unit of work is not open"
        return cm.__exit__(exc_type, exc, tb)

    @property
    def session(self) -> Session:
        assert self.scope is not None, "the unit of work is not open"
        return self.scope.session

    @property
    def transaction(self) -> WriteTransaction:
        """The thread's :class:`~crm_desktop.storage.transaction.WriteTransaction` (bulk writers use it)."""
        assert self.scope is not None, "the unit of work is not open"
        return self.scope.tx

    @property
    def changes(self) -> Sequence[Change]:
        """The changes written in this unit of work so far (flush first to see pending ORM writes)."""
        assert self.scope is not None, "the unit of work is not open"
        return self.scope.changes

    @contextmanager
    def audited_as(self, action: str) -> Iterator[None]:
        """Changes flushed in this block are audited as ``action`` (``merge``, ``convert``)."""
        scope = self.scope
        assert scope is not None, "the unit of work is not open"
        self.session.flush()
        previous, scope.audit_action = scope.audit_action, action
        try:
            yield
            self.session.flush()
        finally:
            scope.audit_action = previous

    def publish_after_commit(self, name: str, payload: dict[str, Any]) -> None:
        """Publish the event once the outermost transaction committed (never after a rollback)."""
        assert self.scope is not None, "the unit of work is not open"
        event = Event(name, {k: plain(v) for k, v in payload.items()}, str(self.actor))
        self.scope.after_commit(lambda: self._events.publish(event))
