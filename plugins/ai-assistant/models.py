"""The assistant's own tables: every exchange, every proposal, and the stage moves it saw.

An exchange keeps the whole conversation of one request (the messages sent to the
model and its answers, tool results included) so the rep can see why the agent
proposed what it did. A proposal is one write the model asked for; only the rep
approves it. Stage moves are recorded from ``deal.stage_changed`` events so the
scorer knows at which stage a lost deal was lost.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_desktop.plugin_api import declarative_base_for

Base = declarative_base_for("ai-assistant")


def utcnow() -> datetime:
    """Naive UTC, as the core stores timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Exchange(Base):
    """One request to the assistant and everything that happened in it."""

    __tablename__ = "ai_assistant_exchanges"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    request: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: running | done | failed | cancelled | capped
    status: Mapped[str] = mapped_column(String(20), default="running")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON list of the chat messages (system, user, assistant, tool) in order
    transcript: Mapped[str] = mapped_column(Text, default="[]")


class ProposalRow(Base):
    """A write the model proposed; applied only after the rep approves it."""

    __tablename__ = "ai_assistant_proposals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(ForeignKey("ai_assistant_exchanges.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    tool: Mapped[str] = mapped_column(String(40))
    entity: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    title: Mapped[str] = mapped_column(String(400))
    #: JSON list of {"field", "label", "before", "after"}
    changes: Mapped[str] = mapped_column(Text)
    #: JSON of the validated tool arguments, as they will be applied
    payload: Mapped[str] = mapped_column(Text)
    #: pending | applied | rejected | failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: who the write was made as: agent:<model>, on behalf of the signed-in user
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    on_behalf_of: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class StageMove(Base):
    """A deal moved between stages (from ``deal.stage_changed``)."""

    __tablename__ = "ai_assistant_stage_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[str] = mapped_column(String(36), index=True)
    from_stage_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    to_stage_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
