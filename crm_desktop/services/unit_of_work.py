"""The one path every write takes (DESIGN.md, Sync: outbox in the same transaction).

A :class:`UnitOfWork` is a write transaction (``BEGIN IMMEDIATE``) with an
actor. Services call :meth:`UnitOfWork.record` for every change; that writes
the audit entry and hands the change to every registered change listener in
the same transaction (sync adds its outbox row there), and queues the domain
events, which are published only after the commit succeeded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Sequence

from sqlalchemy.orm import Session

from crm_desktop.domain.actor import Actor
from crm_desktop.services.events import Event, EventBus
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.engine import Database
from crm_desktop.storage.models import AuditEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One change to one record. ``fields`` maps each changed field to ``(old, new)``."""

    entity: str
    record_id: str
    op: str  # create | update | delete | merge | convert
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


ChangeListener = Callable[[Session, Change, Actor], None]


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


class UnitOfWork:
    def __init__(self, db: Database, actor: Actor, events: EventBus,
                 listeners: list[ChangeListener], *, audit: bool = True):
        self.db = db
        self.actor = actor
        self._events = events
        self._listeners = listeners
        self._audit = audit
        self._pending_events: list[Event] = []
        self.session: Session | None = None
        self.changes: list[Change] = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self.db.write_sessions()
        self.session.begin()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.session is not None
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
        if exc_type is None:
            for event in self._pending_events:
                self._events.publish(event)
        return False

    def record(self, change: Change, *, audit_action: str | None = None) -> None:
        """Audit the change, let listeners (sync outbox) write in this transaction."""
        assert self.session is not None, "record() outside the transaction"
        self.changes.append(change)
        if self._audit:
            self.session.add(AuditEntry(
                actor_kind=self.actor.kind.value,
                actor_name=self.actor.name,
                action=audit_action or change.op,
                entity=change.entity,
                record_id=change.record_id,
                changes={k: [plain(o), plain(n)] for k, (o, n) in change.fields.items()},
            ))
        for listener in self._listeners:
            listener(self.session, change, self.actor)

    def record_many(self, changes: Sequence[Change], *, audit_action: str | None = None) -> None:
        """:meth:`record` for many changes at once (bulk import): the same audit entries and
        listener calls, but the audit rows go in with one bulk insert."""
        assert self.session is not None, "record_many() outside the transaction"
        self.changes.extend(changes)
        if self._audit and changes:
            # plain DBAPI executemany: per-row SQLAlchemy parameter processing would dominate an import
            at = utcnow().replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # as UTCDateTime stores it
            kind, name = self.actor.kind.value, self.actor.name
            self.session.flush()
            self.session.connection().connection.driver_connection.executemany(
                "INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, changes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(at, kind, name, audit_action or change.op, change.entity, change.record_id,
                  json.dumps({k: [_plain_fast(o), _plain_fast(n)] for k, (o, n) in change.fields.items()},
                             ensure_ascii=False))
                 for change in changes])
        for change in changes:
            for listener in self._listeners:
                listener(self.session, change, self.actor)

    def publish_after_commit(self, name: str, payload: dict[str, Any]) -> None:
        self._pending_events.append(Event(name, {k: plain(v) for k, v in payload.items()}, str(self.actor)))
