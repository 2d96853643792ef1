"""Activities: calls, meetings, visits, tasks and notes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len, text_limits
from crm_desktop.domain.enums import ActivityKind
from crm_desktop.domain.validation import check_choice, check_datetime, clean_text
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.storage import models
from crm_desktop.storage.base import utcnow

_LINKS = (("contact_id", models.Contact), ("company_id", models.Company),
          ("deal_id", models.Deal), ("lead_id", models.Lead))


class ActivityService(EntityService[models.Activity, records.Activity]):
    entity = "activity"
    model = models.Activity
    record_type = records.Activity
    writable = ("kind", "subject", "body", "due_at", "done_at", "location", "contact_id", "company_id",
                "deal_id", "lead_id", "owner_id", "team_id")
    sort_keys = {"due": "due_at", "updated": "updated_at", "created": "created_at", "subject": "subject"}
    enum_fields = {"kind": ActivityKind}
    fts_table = "activities_fts"

    def clean(self, session: Session, fields: dict[str, Any], row: models.Activity | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "kind" in fields:
            out["kind"] = check_choice(fields.get("kind"), ActivityKind, "kind", e).value
        if row is None or "subject" in fields:
            out["subject"] = clean_text(fields.get("subject"), "subject", entity=e, max_len=max_len(e, "subject"), required=True)
        for name, limit in text_limits(e):
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        for name in ("due_at", "done_at"):
            if name in fields:
                out[name] = check_datetime(fields[name], name, e)
        for name, model in _LINKS:
            if name in fields:
                value = fields[name] or None
                if value is not None:
                    target = session.get(model, value)
                    if target is None or target.deleted_at is not None:
                        raise ValidationError(name, value, f"must be the id of an existing {name[:-3]}", e)
                out[name] = value
        return out

    def after_create(self, uow: UnitOfWork, row: models.Activity) -> None:
        super().after_create(uow, row)
        uow.publish_after_commit("activity.logged", {
            "id": row.id, "kind": row.kind, "contact_id": row.contact_id, "company_id": row.company_id,
            "deal_id": row.deal_id, "lead_id": row.lead_id,
        })

    def log(self, kind: ActivityKind | str, subject: str, **fields: Any) -> records.Activity:
        """Log something that happened (a call, a visit, a note): done now unless given."""
        fields.setdefault("done_at", utcnow())
        return self.create(kind=kind, subject=subject, **fields)

    def schedule(self, kind: ActivityKind | str, subject: str, due_at: datetime, **fields: Any) -> records.Activity:
        """Plan something (a follow-up task, a meeting) for ``due_at``."""
        return self.create(kind=kind, subject=subject, due_at=due_at, **fields)

    def complete(self, activity_id: str, outcome: str | None = None) -> records.Activity:
        """Mark an activity done now; an ``outcome`` is added to its body (after what it says)."""
        if outcome is None or not outcome.strip():
            return self.update(activity_id, done_at=utcnow())
        with self._services.unit_of_work() as uow:
            row = self.live_row(uow.session, activity_id)
            body = f"{row.body.rstrip()}\n\nOutcome: {outcome.strip()}" if row.body else f"Outcome: {outcome.strip()}"
            row = self.update_in(uow, activity_id, {"done_at": utcnow(), "body": body})
            uow.session.flush()
            uow.session.refresh(row)
            return self.to_record(row)

    def for_record(self, *, contact_id: str | None = None, company_id: str | None = None,
                   deal_id: str | None = None, lead_id: str | None = None, limit: int = 200) -> list[records.Activity]:
        """A record's activities, newest first (due or done)."""
        model = models.Activity
        stmt = select(model).where(model.deleted_at.is_(None))
        for name, value in (("contact_id", contact_id), ("company_id", company_id),
                            ("deal_id", deal_id), ("lead_id", lead_id)):
            if value is not None:
                stmt = stmt.where(getattr(model, name) == value)
        stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
        with self._services.db.read_sessions() as session:
            return [self.to_record(r) for r in session.scalars(stmt)]

    def agenda(self, now: datetime, *, horizon_days: int = 7, limit: int = 200) -> dict[str, list[records.Activity]]:
        """The Today view: overdue, due today, upcoming (open tasks, visits, calls, meetings)."""
        model = models.Activity
        local_now = now.astimezone()
        start_of_day = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        end_of_day = start_of_day + timedelta(days=1)
        horizon = start_of_day + timedelta(days=horizon_days)
        base = select(model).where(model.deleted_at.is_(None), model.done_at.is_(None), model.due_at.is_not(None))
        with self._services.db.read_sessions() as session:
            def fetch(*conds: ColumnElement[bool]) -> list[records.Activity]:
                rows = session.scalars(base.where(*conds).order_by(model.due_at, model.id).limit(limit))
                return [self.to_record(r) for r in rows]
            return {
                "overdue": fetch(model.due_at < start_of_day),
                "today": fetch(model.due_at >= start_of_day, model.due_at < end_of_day),
                "upcoming": fetch(model.due_at >= end_of_day, model.due_at < horizon),
            }

    def agenda_counts(self, now: datetime, *, horizon_days: int = 7,
                      kinds: tuple[ActivityKind, ...] | None = None) -> dict[str, int]:
        """True counts of :meth:`agenda`'s three lists (which are capped), for the Today tiles;
        ``kinds`` counts only activities of those kinds."""
        model = models.Activity
        local_now = now.astimezone()
        start_of_day = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        end_of_day = start_of_day + timedelta(days=1)
        horizon = start_of_day + timedelta(days=horizon_days)
        base = (select(func.count()).select_from(model)
                .where(model.deleted_at.is_(None), model.done_at.is_(None), model.due_at.is_not(None)))
        if kinds is not None:
            base = base.where(model.kind.in_([ActivityKind(k).value for k in kinds]))
        with self._services.db.read_sessions() as session:
            def count(*conds: ColumnElement[bool]) -> int:
                return int(session.scalar(base.where(*conds)) or 0)
            return {
                "overdue": count(model.due_at < start_of_day),
                "today": count(model.due_at >= start_of_day, model.due_at < end_of_day),
                "upcoming": count(model.due_at >= end_of_day, model.due_at < horizon),
            }

    def _stale_deals(self, now: datetime, days: int) -> tuple[type[models.Deal], tuple[ColumnElement[bool], ...]]:
        cutoff = now - timedelta(days=days)
        deal, act = models.Deal, models.Activity
        recent = exists().where(act.deal_id == deal.id, act.deleted_at.is_(None),
                                or_(act.created_at >= cutoff, and_(act.done_at.is_not(None), act.done_at >= cutoff)))
        return deal, (deal.deleted_at.is_(None), deal.status == "open", deal.updated_at < cutoff, ~recent)

    def stale_deal_ids(self, now: datetime, days: int = 30, limit: int = 100) -> list[str]:
        """Open deals with no activity (logged or changed) in the last ``days`` days."""
        deal, conds = self._stale_deals(now, days)
        stmt = select(deal.id).where(*conds).order_by(deal.updated_at).limit(limit)
        with self._services.db.read_sessions() as session:
            return list(session.scalars(stmt))

    def count_stale_deals(self, now: datetime, days: int = 30) -> int:
        """How many deals :meth:`stale_deal_ids` would list without its limit."""
        deal, conds = self._stale_deals(now, days)
        with self._services.db.read_sessions() as session:
            return int(session.scalar(select(func.count()).select_from(deal).where(*conds)) or 0)
