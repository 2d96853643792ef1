"""Every call the assistant makes into ``ctx``, in one place.

Reads walk every page (``iter_all``, or ``list`` page by page with a sort): scoring and the next
actions see every record, never the first page only. Writes use the facade's verbs
(``ctx.activities.log/schedule``, ``ctx.deals.move_to_stage``) and run only for a proposal the rep
approved, inside ``ctx.acting_as_agent(model)``, so the audit log names ``agent:<model>`` on
behalf of the signed-in user (``ctx.users.current()``).

Every call goes through the permission-checked facade: a refused call raises
:class:`crm_desktop.plugin_api.PermissionDenied` and is audited. A write the model asks for is
checked with ``ctx.require`` when it is proposed, so a refusal is audited then, not only when
nothing is left to refuse.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from crm_desktop.plugin_api import MAX_LIMIT

#: The record collections the assistant reads, by entity name.
RESOURCES: dict[str, Callable[[Any], Any]] = {
    "contact": lambda ctx: ctx.contacts,
    "company": lambda ctx: ctx.companies,
    "lead": lambda ctx: ctx.leads,
    "deal": lambda ctx: ctx.deals,
    "activity": lambda ctx: ctx.activities,
}


def records(ctx: Any, entity: str) -> Any:
    """``ctx.contacts`` for ``contact`` and so on; ValueError for an unknown entity."""
    try:
        return RESOURCES[entity](ctx)
    except KeyError:
        raise ValueError(f"unknown record type {entity!r} (one of {', '.join(RESOURCES)})") from None


def get(ctx: Any, entity: str, record_id: str) -> Any:
    return records(ctx, entity).get(record_id)


def search(ctx: Any, entity: str, text: str, limit: int = 10) -> list:
    return list(records(ctx, entity).search(text, limit=limit))


def page(ctx: Any, entity: str, *, limit: int = 50, sort: str | None = None, descending: bool = False,
         **filters: Any) -> list:
    """The first ``limit`` (1..1000) records in ``sort`` order, as a plain list (for "the latest N")."""
    return list(records(ctx, entity).list(limit=limit, sort=sort, descending=descending, **filters))


def iter_all(ctx: Any, entity: str, *, batch: int = 500, **filters: Any) -> Iterator[Any]:
    """Every record of ``entity`` matching ``filters``, page after page."""
    return records(ctx, entity).iter_all(batch=batch, **filters)


def iter_sorted(ctx: Any, entity: str, *, sort: str, descending: bool = False, **filters: Any) -> Iterator[Any]:
    """Every record of ``entity`` matching ``filters`` in ``sort`` order, page after page."""
    facade = records(ctx, entity)
    cursor = None
    while True:
        found = facade.list(limit=MAX_LIMIT, sort=sort, descending=descending, cursor=cursor, **filters)
        yield from found
        if not found.has_more:
            return
        cursor = found.next_cursor


def current_user(ctx: Any) -> str:
    """Who the assistant works for: the signed-in user's name (``local`` when nobody is signed in)."""
    return ctx.users.current().username


def acting_as_agent(ctx: Any, model: str) -> AbstractContextManager[None]:
    """Writes inside are audited with actor ``agent:<model>`` on behalf of the signed-in user."""
    return ctx.acting_as_agent(model)


def require(ctx: Any, permission: str, operation: str) -> None:
    """:class:`PermissionDenied` (audited) unless the plugin and the user may use ``permission`` now."""
    ctx.require(permission, operation)


# ---------------------------------------------------------------- reads the tools need

def activities_of(ctx: Any, entity: str, record_id: str, limit: int = 10) -> list:
    """A record's latest activities, newest first."""
    link = {"contact": "contact_id", "company": "company_id", "deal": "deal_id", "lead": "lead_id"}.get(entity)
    if link is None:
        return []
    return page(ctx, "activity", limit=limit, sort="created", descending=True, **{link: record_id})


def open_deals_of(ctx: Any, entity: str, record_id: str, limit: int = 10) -> list:
    link = {"contact": "contact_id", "company": "company_id"}.get(entity)
    if link is None:
        return []
    return page(ctx, "deal", limit=limit, status="open", **{link: record_id})


def start_of_today(now: datetime) -> datetime:
    """Local midnight of ``now``, as an aware UTC datetime (what the facade takes and returns)."""
    local = now.astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(timezone.utc)


def agenda(ctx: Any, now: datetime) -> dict[str, list]:
    """Every open activity that is overdue (most overdue first) and every one due today (by time)."""
    start = start_of_today(now)
    end = start + timedelta(days=1)
    return {"overdue": list(iter_sorted(ctx, "activity", sort="due", open_only=True, due_before=start)),
            "today": list(iter_sorted(ctx, "activity", sort="due", open_only=True, due_after=start,
                                      due_before=end))}


def stages(ctx: Any, pipeline_id: str) -> list[dict]:
    """The stages of a pipeline in board order: ``[{"id", "name", "probability", "is_won", "is_lost"}]``."""
    return [{"id": s.id, "name": s.name, "probability": s.probability, "is_won": s.is_won, "is_lost": s.is_lost}
            for s in ctx.pipelines.stages(pipeline_id)]


def stage_names(ctx: Any) -> dict[str, str]:
    """Stage id -> name, over every pipeline (also stages no deal is in now)."""
    return {s.id: s.name for p in ctx.pipelines.list() for s in ctx.pipelines.stages(p.id)}


# ---------------------------------------------------------------- writes (only for approved proposals)

def _links(contact_id: str | None, company_id: str | None, deal_id: str | None) -> dict[str, str]:
    return {k: v for k, v in (("contact_id", contact_id), ("company_id", company_id), ("deal_id", deal_id)) if v}


def create_task(ctx: Any, subject: str, *, due_at: datetime | None = None, notes: str | None = None,
                contact_id: str | None = None, company_id: str | None = None, deal_id: str | None = None) -> Any:
    """An open task; scheduled for ``due_at`` when there is one, else a task with no due date."""
    links = _links(contact_id, company_id, deal_id)
    if due_at is not None:
        return ctx.activities.schedule("task", subject, due_at, notes=notes, **links)
    return ctx.activities.create(kind="task", subject=subject, body=notes, **links)


def log_activity(ctx: Any, kind: str, subject: str, *, notes: str | None = None,
                 occurred_at: datetime | None = None, contact_id: str | None = None,
                 company_id: str | None = None, deal_id: str | None = None) -> Any:
    return ctx.activities.log(kind, subject, notes=notes, occurred_at=occurred_at,
                              **_links(contact_id, company_id, deal_id))


def update_deal(ctx: Any, deal_id: str, *, stage_id: str | None = None, amount: Any = None,
                expected_close: Any = None) -> Any:
    """Move the deal to ``stage_id`` (any stage of its pipeline, won and lost included) and change its
    amount and expected close, in one transaction."""
    fields = {k: v for k, v in (("amount", amount), ("expected_close", expected_close)) if v is not None}
    with ctx.transaction():
        deal = None
        if stage_id is not None:
            deal = ctx.deals.move_to_stage(deal_id, stage_id)
        if fields:
            deal = ctx.deals.update(deal_id, **fields)
    return deal
