"""Reading the audit log, and recording events that are not record changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, or_, select

from crm_desktop.domain.actor import Actor
from crm_desktop.domain.records import AuditEntry
from crm_desktop.storage import models

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices


class AuditLog:
    def __init__(self, services: "CrmServices"):
        self._services = services

    def for_record(self, entity: str, record_id: str, limit: int = 200) -> list[AuditEntry]:
        """A record's history, newest first: its own entries and the bulk entry (an import's) that
        created it, shown with this ``record_id`` and the batch's ``changes`` (``records``,
        ``first_id``, ``last_id``, ``file``...) instead of field values."""
        stmt = _history(entity, record_id).order_by(models.AuditEntry.id.desc()).limit(limit)
        return self._query(stmt, record_id)

    def created(self, entity: str, record_id: str) -> AuditEntry | None:
        """Who created the record on this device, and when: the oldest entry of its history (an
        ORM create, or the bulk entry of the import that created it); None when this device's log
        has no entry of it (a record that came from the server: the server's audit knows)."""
        stmt = _history(entity, record_id).order_by(models.AuditEntry.id).limit(1)
        found = self._query(stmt, record_id)
        if not found:
            return None
        first = found[0]
        if first.id in self._bulk_entries(record_id) or _reads_as_creation(first):
            return first
        return None

    def recent(self, limit: int = 200, *, action: str | None = None, actor_name: str | None = None) -> list[AuditEntry]:
        stmt = select(models.AuditEntry)
        if action:
            stmt = stmt.where(models.AuditEntry.action == action)
        if actor_name:
            stmt = stmt.where(models.AuditEntry.actor_name == actor_name)
        return self._query(stmt.order_by(models.AuditEntry.id.desc()).limit(limit))

    def write(self, actor: Actor, action: str, *, entity: str | None = None, record_id: str | None = None,
              details: dict[str, Any] | None = None) -> None:
        """Record something that is not a change (a denied permission, a plugin installed).

        Inside an open write transaction of this thread it is written when that transaction ends,
        committed or not: a refusal stays on record even when the refused work is rolled back.
        """
        def write() -> None:
            with self._services.db.write_sessions() as session, session.begin():
                session.add(models.AuditEntry(actor_kind=actor.kind.value, actor_name=actor.name, action=action,
                                              entity=entity, record_id=record_id, changes=details or {},
                                              on_behalf_of=actor.on_behalf_of))

        tx = self._services.db.current_transaction()
        if tx is None:
            write()
        else:  # a second connection would wait for this thread's own write lock
            tx.after_end(write)

    def _bulk_entries(self, record_id: str) -> set[int]:
        with self._services.db.read_sessions() as session:
            return set(session.scalars(select(models.AuditEntryRecord.entry_id)
                                       .where(models.AuditEntryRecord.record_id == record_id)))

    def _query(self, stmt: Select[models.AuditEntry], record_id: str | None = None) -> list[AuditEntry]:
        """Entries as plain data; a bulk entry read for one record carries that ``record_id``."""
        with self._services.db.read_sessions() as session:
            return [AuditEntry(id=r.id, at=r.at, actor_kind=r.actor_kind, actor_name=r.actor_name, action=r.action,
                               entity=r.entity, record_id=r.record_id if r.record_id is not None else record_id,
                               changes=r.changes or {}, on_behalf_of=r.on_behalf_of)
                    for r in session.scalars(stmt)]


def _history(entity: str, record_id: str) -> Select[models.AuditEntry]:
    """A record's entries: its own, and the bulk entry (an import's) whose record list names it."""
    entry = models.AuditEntry
    batch = select(models.AuditEntryRecord.entry_id).where(models.AuditEntryRecord.record_id == record_id)
    return select(entry).where(entry.entity == entity,
                               or_(entry.record_id == record_id,
                                   and_(entry.record_id.is_(None), entry.id.in_(batch))))


def _reads_as_creation(entry: AuditEntry) -> bool:
    """A record's oldest entry is its creation unless it changed values the record already had
    (then the record came from the server and this is a later edit). Entries made before the
    bulk entries existed (or written back by the downgrade of 0009) are per record: an
    ``import``'s creation there has only ``[null, value]`` pairs, or the batch's details."""
    if entry.action in ("update", "delete"):
        return False
    return not any(isinstance(v, list) and len(v) == 2 and v[0] is not None for v in entry.changes.values())
