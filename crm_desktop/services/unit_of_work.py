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

    def record_inserted(self, entity: str, table: str, fields: Sequence[str], after_rowid: int, *,
                        audit_action: str, tag_link: tuple[str, str] | None = None,
                        changes: Callable[[], Sequence[Change]] = tuple) -> None:
        """Audit the rows a bulk insert just added to ``table`` (``rowid > after_rowid``), set-based.

        The same audit entries :meth:`record_many` writes (``{field: [null, value]}`` for each
        field with a value, plus ``tags`` through ``tag_link`` = (link table, fk column)), but
        SQLite builds the JSON in one ``INSERT ... SELECT``. ``changes()`` builds the
        :class:`Change` objects; it is only called when listeners (sync) want them.
        """
        assert self.session is not None, "record_inserted() outside the transaction"
        dbapi = self.session.connection().connection.driver_connection
        if self._audit:
            members = [f"'{f}', CASE WHEN r.{f} IS NULL THEN NULL ELSE json_array(NULL, r.{f}) END" for f in fields]
            if tag_link is not None:
                link, fk = tag_link
                members.append(
                    f"'tags', (SELECT json_array(NULL, json_group_array(name)) FROM (SELECT t.name FROM {link} l "
                    f"JOIN tags t ON t.id = l.tag_id WHERE l.{fk} = r.id ORDER BY t.name COLLATE NOCASE) "
                    f"HAVING count(*) > 0)")
            at = utcnow().replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            # json_patch drops the members whose value is null (RFC 7396), as the per-row dump did
            dbapi.execute(
                "INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, changes) "
                f"SELECT ?, ?, ?, ?, ?, r.id, json_patch('{{}}', json_object({', '.join(members)})) "
                f"FROM {table} r WHERE r.rowid > ? ORDER BY r.rowid",
                (at, self.actor.kind.value, self.actor.name, audit_action, entity, after_rowid))
        if self._listeners:
            built = list(changes())
            self.changes.extend(built)
            for change in built:
                for listener in self._listeners:
                    listener(self.session, change, self.actor)

    def publish_after_commit(self, name: str, payload: dict[str, Any]) -> None:
        self._pending_events.append(Event(name, {k: plain(v) for k, v in payload.items()}, str(self.actor)))
