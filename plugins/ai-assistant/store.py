"""The assistant's records in its own tables: exchanges, proposals, stage moves."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .models import Exchange, ProposalRow, StageMove, utcnow
from .tools import FieldChange, Proposal


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def start_exchange(ctx: Any, exchange_id: str, model: str, request: str) -> None:
    with ctx.db.session() as s:
        s.add(Exchange(id=exchange_id, model=model, request=request, status="running", transcript="[]"))


def save_transcript(ctx: Any, exchange_id: str, messages: list[dict]) -> None:
    with ctx.db.session() as s:
        row = s.get(Exchange, exchange_id)
        row.transcript = _json(messages)


def finish_exchange(ctx: Any, exchange_id: str, *, status: str, reply: str | None, messages: list[dict],
                    error: str | None = None) -> None:
    with ctx.db.session() as s:
        row = s.get(Exchange, exchange_id)
        row.status, row.reply, row.error = status, reply, error
        row.transcript = _json(messages)
        row.finished_at = utcnow()


def exchange(ctx: Any, exchange_id: str) -> dict | None:
    """One exchange as plain data, its transcript and proposals included."""
    with ctx.db.session() as s:
        row = s.get(Exchange, exchange_id)
        if row is None:
            return None
        return {"id": row.id, "started_at": row.started_at, "finished_at": row.finished_at, "model": row.model,
                "request": row.request, "reply": row.reply, "status": row.status, "error": row.error,
                "transcript": json.loads(row.transcript or "[]"),
                "proposals": [_proposal(p).to_json() for p in s.scalars(
                    select(ProposalRow).where(ProposalRow.exchange_id == exchange_id).order_by(ProposalRow.created_at,
                                                                                               ProposalRow.id))]}


def recent_exchanges(ctx: Any, limit: int = 20) -> list[dict]:
    with ctx.db.session() as s:
        rows = s.scalars(select(Exchange).order_by(Exchange.started_at.desc()).limit(limit))
        return [{"id": r.id, "started_at": r.started_at, "request": r.request, "reply": r.reply, "status": r.status,
                 "model": r.model} for r in rows]


def add_proposal(ctx: Any, exchange_id: str, proposal: Proposal) -> None:
    with ctx.db.session() as s:
        s.add(ProposalRow(id=proposal.id, exchange_id=exchange_id, tool=proposal.tool, entity=proposal.entity,
                          record_id=proposal.record_id, title=proposal.title[:400],
                          changes=_json([c.to_json() for c in proposal.changes]), payload=_json(proposal.payload),
                          status=proposal.status))


def _proposal(row: ProposalRow) -> Proposal:
    changes = [FieldChange(c["field"], c["label"], c["before"], c["after"]) for c in json.loads(row.changes)]
    return Proposal(tool=row.tool, entity=row.entity, record_id=row.record_id, title=row.title, changes=changes,
                    payload=json.loads(row.payload), id=row.id, status=row.status, actor=row.actor,
                    on_behalf_of=row.on_behalf_of, result_id=row.result_id, error=row.error)


def proposal(ctx: Any, proposal_id: str, session: Any = None) -> tuple[Proposal, str] | None:
    """A proposal and the model of its exchange, or None."""
    def read(s):
        row = s.get(ProposalRow, proposal_id)
        if row is None:
            return None
        return _proposal(row), s.get(Exchange, row.exchange_id).model

    if session is not None:
        return read(session)
    with ctx.db.session() as s:
        return read(s)


def pending_proposals(ctx: Any, limit: int = 100) -> list[Proposal]:
    with ctx.db.session() as s:
        rows = s.scalars(select(ProposalRow).where(ProposalRow.status == "pending")
                         .order_by(ProposalRow.created_at, ProposalRow.id).limit(limit))
        return [_proposal(r) for r in rows]


def decide(session: Any, proposal_id: str, status: str, *, actor: str | None = None, on_behalf_of: str | None = None,
           result_id: str | None = None, error: str | None = None) -> None:
    row = session.get(ProposalRow, proposal_id)
    row.status, row.decided_at = status, utcnow()
    row.actor, row.on_behalf_of, row.result_id, row.error = actor, on_behalf_of, result_id, error


def record_stage_move(ctx: Any, deal_id: str, from_stage: str | None, to_stage: str | None,
                      status: str | None) -> None:
    with ctx.db.session() as s:
        s.add(StageMove(deal_id=deal_id, from_stage_id=from_stage, to_stage_id=to_stage, status=status))


def last_open_stage(ctx: Any) -> dict[str, str]:
    """deal id -> the stage it left when it was won or lost (from the moves the plugin saw)."""
    out: dict[str, str] = {}
    with ctx.db.session() as s:
        for deal_id, from_stage, status in s.execute(
                select(StageMove.deal_id, StageMove.from_stage_id, StageMove.status).order_by(StageMove.id)):
            if status in ("won", "lost") and from_stage:
                out[deal_id] = from_stage
    return out


def when(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value else None
