"""Reading the audit log, and recording events that are not record changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_desktop.domain.actor import Actor
from crm_desktop.domain.records import AuditEntry
from crm_desktop.storage import models

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices


class AuditLog:
    def __init__(self, services: "CrmServices"):
        self._services = services

    def for_record(self, entity: str, record_id: str, limit: int = 200) -> list[AuditEntry]:
        """A record's history, newest first."""
        stmt = (select(models.AuditEntry).where(models.AuditEntry.entity == entity,
                                                models.AuditEntry.record_id == record_id)
                .order_by(models.AuditEntry.id.desc()).limit(limit))
        return self._query(stmt)

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

    def _query(self, stmt) -> list[AuditEntry]:
        with self._services.db.read_sessions() as session:
            return [AuditEntry(id=r.id, at=r.at, actor_kind=r.actor_kind, actor_name=r.actor_name, action=r.action,
                               entity=r.entity, record_id=r.record_id, changes=r.changes or {},
                               on_behalf_of=r.on_behalf_of)
                    for r in session.scalars(stmt)]
