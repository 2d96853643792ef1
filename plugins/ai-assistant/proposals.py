"""Approving and rejecting proposals: the only path from the model to a write.

Only the rep calls :func:`approve` (a button on the card in the panel, or
``agent ask --approve`` on the command line); nothing the model says or a record
contains can. An approved proposal is applied through the facade, as the agent
(``agent:<model>``) on behalf of the signed-in user, in one transaction with the
proposal's new status. A deal that changed since the proposal was made is not
overwritten: the proposal fails with a message saying so.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crm_desktop.plugin_api import NotFound, PermissionDenied, ValidationError

from . import crm_tools, store
from .tools import Proposal


class ProposalError(Exception):
    """A proposal cannot be applied or rejected; the message says why in one sentence."""


def _load(ctx: Any, proposal_id: str, session: Any = None) -> tuple[Proposal, str]:
    found = store.proposal(ctx, proposal_id, session)
    if found is None:
        raise ProposalError(f"There is no proposal {proposal_id!r}.")
    proposal, model = found
    if proposal.status != "pending":
        raise ProposalError(f"Proposal {proposal_id} is already {proposal.status}.")
    return proposal, model


def reject(ctx: Any, proposal_id: str) -> Proposal:
    """Mark a pending proposal rejected; nothing is written to the CRM."""
    with ctx.db.session() as s:
        _load(ctx, proposal_id, s)
        store.decide(s, proposal_id, "rejected", on_behalf_of=crm_tools.current_user(ctx))
    return store.proposal(ctx, proposal_id)[0]


def approve(ctx: Any, proposal_id: str) -> Proposal:
    """Apply a pending proposal as ``agent:<model>``; returns it with status ``applied``.

    A refused permission, a stale record or a value the CRM rejects leaves the CRM
    unchanged, marks the proposal ``failed`` with the reason, and raises :class:`ProposalError`.
    """
    proposal, model = _load(ctx, proposal_id)
    actor, user = f"agent:{model}", crm_tools.current_user(ctx)
    try:
        with ctx.transaction() as s:
            with crm_tools.acting_as_agent(ctx, model):
                record = _perform(ctx, proposal)
            store.decide(s, proposal_id, "applied", actor=actor, on_behalf_of=user, result_id=record.id)
    except (PermissionDenied, ValidationError, NotFound, ProposalError) as exc:
        message = f"PermissionDenied: {exc}" if isinstance(exc, PermissionDenied) else str(exc)
        with ctx.db.session() as s:
            store.decide(s, proposal_id, "failed", actor=actor, on_behalf_of=user, error=message)
        raise ProposalError(f"Proposal {proposal.title!r} was not applied: {message}") from exc
    return store.proposal(ctx, proposal_id)[0]


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _perform(ctx: Any, proposal: Proposal) -> Any:
    p = proposal.payload
    if proposal.tool == "create_task":
        return crm_tools.create_task(ctx, p["subject"], due_at=_when(p.get("due_at")), notes=p.get("notes"),
                                     contact_id=p.get("contact_id"), company_id=p.get("company_id"),
                                     deal_id=p.get("deal_id"))
    if proposal.tool == "log_activity":
        return crm_tools.log_activity(ctx, p["kind"], p["subject"], notes=p.get("notes"),
                                      occurred_at=_when(p.get("occurred_at")), contact_id=p.get("contact_id"),
                                      company_id=p.get("company_id"), deal_id=p.get("deal_id"))
    if proposal.tool == "update_deal":
        deal = crm_tools.get(ctx, "deal", p["deal_id"])
        now = {"stage_id": deal.stage_id, "amount_cents": deal.amount_cents,
               "expected_close": deal.expected_close.isoformat() if deal.expected_close else None}
        for name, expected in p.get("expect", {}).items():
            if now[name] != expected:
                raise ProposalError(f"the deal {deal.title!r} changed since the proposal ({name}); ask again")
        close = p.get("expected_close")
        return crm_tools.update_deal(ctx, deal.id, stage_id=p.get("stage_id"),
                                     amount=Decimal(p["amount"]) if p.get("amount") is not None else None,
                                     expected_close=date.fromisoformat(close) if close else None)
    raise ProposalError(f"unknown proposal kind {proposal.tool!r}")
