"""Pipelines and their ordered stages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len
from crm_desktop.domain.validation import clean_text
from crm_desktop.errors import NotFound, ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.services.unit_of_work import Change, UnitOfWork
from crm_desktop.storage import models

#: The sales pipeline every new database starts with: (name, probability %, won, lost)
DEFAULT_STAGES: tuple[tuple[str, int, bool, bool], ...] = (
    ("Prospecting", 10, False, False),
    ("Qualified", 25, False, False),
    ("Proposal", 50, False, False),
    ("Negotiation", 75, False, False),
    ("Won", 100, True, False),
    ("Lost", 0, False, True),
)
#: Fixed ids for the default pipeline and its stages: every client seeds the same rows, so deals
#: made on different laptops point at the same stages after sync (UUIDv7-shaped, never random).
DEFAULT_PIPELINE_ID = "00000000-0000-7000-8000-000000000100"
DEFAULT_STAGE_IDS = tuple(f"00000000-0000-7000-8000-00000000010{i + 1}" for i in range(len(DEFAULT_STAGES)))


class PipelineService(EntityService[models.Pipeline, records.Pipeline]):
    entity = "pipeline"
    model = models.Pipeline
    record_type = records.Pipeline
    writable = ("name", "position", "is_default")
    sort_keys = {"position": "position", "name": "name"}

    def clean(self, session: Session, fields: dict[str, Any], row: models.Pipeline | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if row is None or "name" in fields:
            out["name"] = clean_text(fields.get("name"), "name", entity=self.entity, max_len=max_len("pipeline", "name"),
                                     required=True)
        if "position" in fields:
            out["position"] = int(fields["position"])
        if "is_default" in fields:
            out["is_default"] = bool(fields["is_default"])
        return out

    def all(self) -> list[records.Pipeline]:
        with self._services.db.read_sessions() as session:
            rows = session.scalars(select(models.Pipeline).where(models.Pipeline.deleted_at.is_(None))
                                   .order_by(models.Pipeline.position, models.Pipeline.name)).all()
            return [self.to_record(r) for r in rows]

    def default(self) -> records.Pipeline:
        pipelines = self.all()
        if not pipelines:
            raise NotFound("pipeline", "default")
        return next((p for p in pipelines if p.is_default), pipelines[0])

    def stages(self, pipeline_id: str) -> list[records.Stage]:
        """The pipeline's live stages in board order."""
        with self._services.db.read_sessions() as session:
            rows = session.scalars(select(models.Stage).where(models.Stage.pipeline_id == pipeline_id,
                                                              models.Stage.deleted_at.is_(None))
                                   .order_by(models.Stage.position)).all()
            return [self._services.stages.to_record(r) for r in rows]

    def ensure_default(self) -> records.Pipeline:
        """Create the default sales pipeline if the database has none (first start).

        It is seed data, the same rows with the same ids on every client, so it is not replicated
        (sync would push one copy per laptop, and reps may not create pipelines on the server).
        """
        with self._services.db.transaction(replicate=False), self._services.unit_of_work() as uow:
            exists = uow.session.scalar(select(models.Pipeline.id).where(models.Pipeline.deleted_at.is_(None)).limit(1))
            if exists is None and uow.session.get(models.Pipeline, DEFAULT_PIPELINE_ID) is None:
                uow.session.add(models.Pipeline(id=DEFAULT_PIPELINE_ID, name="Sales", position=0, is_default=True))
                for position, (name, probability, won, lost) in enumerate(DEFAULT_STAGES):
                    uow.session.add(models.Stage(id=DEFAULT_STAGE_IDS[position], pipeline_id=DEFAULT_PIPELINE_ID,
                                                 name=name, position=position, probability=probability,
                                                 is_won=won, is_lost=lost))
                uow.session.flush()
        return self.default()


class StageService(EntityService[models.Stage, records.Stage]):
    entity = "stage"
    model = models.Stage
    record_type = records.Stage
    writable = ("pipeline_id", "name", "position", "probability", "is_won", "is_lost")
    sort_keys = {"position": "position", "name": "name"}

    def clean(self, session: Session, fields: dict[str, Any], row: models.Stage | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "pipeline_id" in fields:
            pipeline_id = fields.get("pipeline_id")
            pipeline = session.get(models.Pipeline, pipeline_id) if pipeline_id else None
            if pipeline is None or pipeline.deleted_at is not None:
                raise ValidationError("pipeline_id", pipeline_id, "must be the id of an existing pipeline", e)
            out["pipeline_id"] = pipeline_id
        if row is None or "name" in fields:
            out["name"] = clean_text(fields.get("name"), "name", entity=e, max_len=max_len("stage", "name"), required=True)
        if "position" in fields:
            out["position"] = int(fields["position"])
        if "probability" in fields:
            probability = int(fields["probability"])
            if not 0 <= probability <= 100:
                raise ValidationError("probability", probability, "must be between 0 and 100", e)
            out["probability"] = probability
        for flag in ("is_won", "is_lost"):
            if flag in fields:
                out[flag] = bool(fields[flag])
        return out

    def after_create(self, uow: UnitOfWork, row: models.Stage) -> None:  # stages change with their pipeline; no own event
        pass
