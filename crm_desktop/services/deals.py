"""Deals, moving through the stages of their pipeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len, text_limits
from crm_desktop.domain.enums import DealStatus
from crm_desktop.domain.validation import check_amount_cents, check_date, clean_text
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.services.paging import ListQuery
from crm_desktop.storage import models
from crm_desktop.storage.base import utcnow


class DealService(EntityService[models.Deal, records.Deal]):
    entity = "deal"
    model = models.Deal
    record_type = records.Deal
    writable = ("title", "pipeline_id", "stage_id", "amount", "amount_cents", "currency", "company_id",
                "contact_id", "expected_close", "notes", "tags", "owner_id", "team_id")
    sort_keys = {"title": "title", "updated": "updated_at", "created": "created_at",
                 "amount": "amount_cents", "close": "expected_close"}
    fts_table = "deals_fts"
    has_tags = True

    def clean(self, session: Session, fields: dict[str, Any], row: models.Deal | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "title" in fields:
            out["title"] = clean_text(fields.get("title"), "title", entity=e, max_len=max_len(e, "title"), required=True)
        for name, limit in text_limits(e):
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        if "amount" in fields:
            out["amount_cents"] = check_amount_cents(fields["amount"], "amount", e)
        elif "amount_cents" in fields:
            cents = fields["amount_cents"]
            if not isinstance(cents, int) or isinstance(cents, bool) or cents < 0:
                raise ValidationError("amount_cents", cents, "must be a whole number of cents, 0 or more", e)
            out["amount_cents"] = cents
        if "currency" in fields:
            currency = clean_text(fields["currency"], "currency", entity=e, max_len=3) or "EUR"
            if len(currency) != 3 or not currency.isalpha():
                raise ValidationError("currency", currency, "must be a three-letter code like EUR", e)
            out["currency"] = currency.upper()
        if "expected_close" in fields:
            out["expected_close"] = check_date(fields["expected_close"], "expected_close", e)
        for name, model in (("company_id", models.Company), ("contact_id", models.Contact)):
            if name in fields:
                value = fields[name] or None
                if value is not None:
                    target = session.get(model, value)
                    if target is None or target.deleted_at is not None:
                        raise ValidationError(name, value, f"must be the id of an existing {model.__tablename__[:-1]}", e)
                out[name] = value
        self._clean_stage(session, fields, row, out)
        if "tags" in fields:
            out["tags"] = fields["tags"]
        return out

    def _clean_stage(self, session: Session, fields: dict[str, Any], row: models.Deal | None,
                     out: dict[str, Any]) -> None:
        e = self.entity
        pipeline_id = fields.get("pipeline_id") or (row.pipeline_id if row is not None else None)
        if pipeline_id is None:
            default = session.scalars(select(models.Pipeline).where(models.Pipeline.deleted_at.is_(None))
                                      .order_by(models.Pipeline.is_default.desc(), models.Pipeline.position)).first()
            if default is None:
                raise ValidationError("pipeline_id", None, "is required (there is no default pipeline)", e)
            pipeline_id = default.id
        pipeline = session.get(models.Pipeline, pipeline_id)
        if pipeline is None or pipeline.deleted_at is not None:
            raise ValidationError("pipeline_id", pipeline_id, "must be the id of an existing pipeline", e)
        stage_id = fields.get("stage_id") or (row.stage_id if row is not None else None)
        if stage_id is None or ("pipeline_id" in fields and "stage_id" not in fields and row is not None
                                and row.pipeline_id != pipeline_id):
            first = session.scalars(select(models.Stage).where(models.Stage.pipeline_id == pipeline_id,
                                                               models.Stage.deleted_at.is_(None))
                                    .order_by(models.Stage.position)).first()
            if first is None:
                raise ValidationError("stage_id", None, f"pipeline {pipeline.name!r} has no stages", e)
            stage_id = first.id
        stage = session.get(models.Stage, stage_id)
        if stage is None or stage.deleted_at is not None:
            raise ValidationError("stage_id", stage_id, "must be the id of an existing stage", e)
        if stage.pipeline_id != pipeline_id:
            raise ValidationError("stage_id", stage_id,
                                  f"stage {stage.name!r} does not belong to the deal's pipeline {pipeline.name!r}", e)
        if row is None or "pipeline_id" in fields:
            out["pipeline_id"] = pipeline_id
        if row is None or stage_id != row.stage_id:
            out["stage_id"] = stage_id
            out["stage_changed_at"] = utcnow()
            out["status"] = (DealStatus.WON if stage.is_won else DealStatus.LOST if stage.is_lost
                             else DealStatus.OPEN).value

    enum_fields = {"status": DealStatus}

    def sql_extras(self) -> dict[str, Any]:
        return {
            "company_name": select(models.Company.name).where(
                models.Company.id == models.Deal.company_id, models.Company.deleted_at.is_(None)).scalar_subquery(),
            "stage_name": select(models.Stage.name).where(models.Stage.id == models.Deal.stage_id).scalar_subquery(),
        }

    def extra_record_values(self, row: models.Deal) -> dict[str, Any]:
        company = row.company
        return {
            "company_name": company.name if company is not None and company.deleted_at is None else None,
            "stage_name": row.stage.name if row.stage is not None else None,
        }

    def after_update(self, uow: UnitOfWork, row: models.Deal, changed: dict[str, tuple[Any, Any]]) -> None:
        super().after_update(uow, row, changed)
        if "stage_id" in changed:
            uow.publish_after_commit("deal.stage_changed", {
                "id": row.id, "from_stage_id": changed["stage_id"][0], "to_stage_id": changed["stage_id"][1],
                "status": row.status,
                # the names before from/to (kept for existing subscribers)
                "old_stage_id": changed["stage_id"][0], "new_stage_id": changed["stage_id"][1],
            })

    def move_to_stage(self, deal_id: str, stage_id: str) -> records.Deal:
        """Move a deal to another stage of its pipeline (the kanban drag)."""
        return self.update(deal_id, stage_id=stage_id)

    def win(self, deal_id: str) -> records.Deal:
        """Move a deal to its pipeline's won stage (status ``won``)."""
        return self._close(deal_id, won=True, reason=None)

    def lose(self, deal_id: str, reason: str | None = None) -> records.Deal:
        """Move a deal to its pipeline's lost stage (status ``lost``). A ``reason`` is logged on the deal
        as a note activity ("Lost: <reason>") in the same transaction."""
        return self._close(deal_id, won=False, reason=reason)

    def _close(self, deal_id: str, *, won: bool, reason: str | None) -> records.Deal:
        with self._services.unit_of_work() as uow:
            session = uow.session
            row = self.live_row(session, deal_id)
            flag = models.Stage.is_won if won else models.Stage.is_lost
            stage_id = session.scalars(select(models.Stage.id).where(
                models.Stage.pipeline_id == row.pipeline_id, models.Stage.deleted_at.is_(None), flag.is_(True))
                .order_by(models.Stage.position)).first()
            if stage_id is None:
                pipeline = session.get(models.Pipeline, row.pipeline_id)
                raise ValidationError("stage_id", None, f"pipeline {pipeline.name if pipeline else row.pipeline_id!r} "
                                                        f"has no {'won' if won else 'lost'} stage", self.entity)
            row = self.update_in(uow, deal_id, {"stage_id": stage_id})
            if reason is not None and reason.strip():
                self._services.activities.create_in(uow, {
                    "kind": "note", "subject": f"Lost: {reason.strip()}"[:300], "body": reason,
                    "deal_id": row.id, "company_id": row.company_id, "contact_id": row.contact_id,
                    "done_at": utcnow()})
            session.flush()
            session.refresh(row)
            return self.to_record(row)

    def stage_totals(self, pipeline_id: str, query: ListQuery | None = None) -> dict[str, tuple[int, int]]:
        """stage id -> (number of live deals, total amount in cents), for a board's column headers."""
        stmt = self._filtered(
            select(models.Deal.stage_id, func.count(), func.coalesce(func.sum(models.Deal.amount_cents), 0))
            .where(models.Deal.pipeline_id == pipeline_id),
            query or ListQuery(),
        ).group_by(models.Deal.stage_id)
        with self._services.db.read_sessions() as session:
            return {stage: (int(n), int(total)) for stage, n, total in session.execute(stmt)}
