"""Every call the assistant makes into ``ctx``, in one place.

The plugin API is growing this session (paging with cursors, ``ctx.users.current()``,
``ctx.activities.log/schedule``, ``ctx.deals.move_to_stage``, ``ctx.pipelines``,
``ctx.acting_as_agent``; see docs/plugin-guide.md). Each function here uses the new verb
when the running app has it and otherwise today's ``get/list/search/create/update``,
so the rest of the plugin is written against one vocabulary and switching over is a
change in this module only. Every fallback is marked ``# fallback:``.

Every call still goes through the permission-checked facade: a refused call raises
:class:`crm_desktop.plugin_api.PermissionDenied` as usual.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

#: The record collections the assistant reads, by entity name.
RESOURCES = {"contact": "contacts", "company": "companies", "lead": "leads", "deal": "deals",
             "activity": "activities"}

#: Biggest page today's ``list`` returns (the service caps it at 1000 without saying so).
_LEGACY_PAGE = 1000


def records(ctx: Any, entity: str) -> Any:
    """``ctx.contacts`` for ``contact`` and so on; ValueError for an unknown entity."""
    try:
        return getattr(ctx, RESOURCES[entity])
    except KeyError:
        raise ValueError(f"unknown record type {entity!r} (one of {', '.join(RESOURCES)})") from None


def get(ctx: Any, entity: str, record_id: str) -> Any:
    return records(ctx, entity).get(record_id)


def search(ctx: Any, entity: str, text: str, limit: int = 10) -> list:
    return list(records(ctx, entity).search(text, limit=limit))


def page(ctx: Any, entity: str, *, limit: int = 50, sort: str | None = None, descending: bool = False,
         **filters: Any) -> list:
    """One page (a plain list) of records; ``limit`` at most 1000."""
    return list(records(ctx, entity).list(limit=min(limit, _LEGACY_PAGE), sort=sort, descending=descending,
                                          **filters))


def iter_all(ctx: Any, entity: str, *, batch: int = 500, **filters: Any) -> Iterator[Any]:
    """Every record of ``entity`` matching ``filters``, page after page."""
    facade = records(ctx, entity)
    if hasattr(facade, "iter_all"):
        yield from facade.iter_all(batch=batch, **filters)
        return
    # fallback: today's list has no cursor, so one page of at most 1000 is all we can read;
    # switch to facade.iter_all at merge (it walks every page).
    rows = list(facade.list(limit=_LEGACY_PAGE, **filters))
    if len(rows) >= _LEGACY_PAGE:
        ctx.log.warning("only the first %d %s records are read until ctx.%s.iter_all is available",
                        _LEGACY_PAGE, entity, RESOURCES[entity])
    yield from rows


def current_user(ctx: Any) -> str:
    """Who the assistant works for, as ``username`` (or ``local`` when nobody is signed in)."""
    users = getattr(ctx, "users", None)
    if users is not None and hasattr(users, "current"):
        try:
            user = users.current()
            return getattr(user, "username", None) or str(user)
        except Exception:  # not signed in: the local user
            return "local"
    return "local"  # fallback: ctx.users.current() is not on this branch yet


def has_agent_actor(ctx: Any) -> bool:
    """True when the facade can audit writes as ``agent:<model>`` (``ctx.acting_as_agent``)."""
    return hasattr(ctx, "acting_as_agent")


def acting_as_agent(ctx: Any, model: str) -> contextlib.AbstractContextManager:
    """Writes inside are audited with actor ``agent:<model>`` on behalf of the user.

    fallback: without ``ctx.acting_as_agent`` the core audit log names the plugin
    (``plugin:ai-assistant``); the plugin then records ``agent:<model>`` and the user on the
    proposal row it applies (``ai_assistant_proposals.actor``/``on_behalf_of``), which the panel
    and ``agent ask --json`` show. See docs/ai-assistant.md, "Audit".
    """
    if has_agent_actor(ctx):
        return ctx.acting_as_agent(model)
    return contextlib.nullcontext()


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


def agenda(ctx: Any, now: datetime, limit: int = 100) -> dict[str, list]:
    """Open activities that are overdue and those due today."""
    start = start_of_today(now)
    end = start + timedelta(days=1)
    due = page(ctx, "activity", limit=limit, sort="due", open_only=True, due_before=end)
    return {"overdue": [a for a in due if a.due_at is not None and a.due_at < start],
            "today": [a for a in due if a.due_at is not None and a.due_at >= start]}


def stages(ctx: Any, pipeline_id: str) -> list[dict]:
    """The stages of a pipeline in order: ``[{"id", "name", "probability", "is_won", "is_lost"}]``."""
    pipelines = getattr(ctx, "pipelines", None)
    if pipelines is not None and hasattr(pipelines, "stages"):
        return [{"id": s.id, "name": s.name, "probability": s.probability, "is_won": s.is_won,
                 "is_lost": s.is_lost} for s in pipelines.stages(pipeline_id)]
    # fallback: no ctx.pipelines yet; the stages the pipeline's deals are in are all we can see
    seen: dict[str, dict] = {}
    for deal in iter_all(ctx, "deal", pipeline_id=pipeline_id):
        if deal.stage_id not in seen:
            seen[deal.stage_id] = {"id": deal.stage_id, "name": deal.stage_name or deal.stage_id,
                                   "probability": None, "is_won": deal.status == "won",
                                   "is_lost": deal.status == "lost"}
    return list(seen.values())


# ---------------------------------------------------------------- writes (only for approved proposals)

def create_task(ctx: Any, subject: str, *, due_at: datetime | None = None, notes: str | None = None,
                contact_id: str | None = None, company_id: str | None = None, deal_id: str | None = None) -> Any:
    links = {k: v for k, v in (("contact_id", contact_id), ("company_id", company_id), ("deal_id", deal_id)) if v}
    acts = ctx.activities
    if due_at is not None and hasattr(acts, "schedule"):
        return acts.schedule("task", subject, due_at, notes=notes, **links)
    # fallback (and a task without a due date): a plain create of an open task
    return acts.create(kind="task", subject=subject, due_at=due_at, body=notes, **links)


def log_activity(ctx: Any, kind: str, subject: str, *, notes: str | None = None,
                 occurred_at: datetime | None = None, contact_id: str | None = None,
                 company_id: str | None = None, deal_id: str | None = None) -> Any:
    links = {k: v for k, v in (("contact_id", contact_id), ("company_id", company_id), ("deal_id", deal_id)) if v}
    acts = ctx.activities
    if hasattr(acts, "log"):
        return acts.log(kind, subject, notes=notes, occurred_at=occurred_at, **links)
    # fallback: a create with done_at set is what log() does
    done = occurred_at or datetime.now(timezone.utc)
    return acts.create(kind=kind, subject=subject, body=notes, done_at=done, **links)


def update_deal(ctx: Any, deal_id: str, *, stage_id: str | None = None, amount: Any = None,
                expected_close: Any = None) -> Any:
    deals = ctx.deals
    fields = {k: v for k, v in (("amount", amount), ("expected_close", expected_close)) if v is not None}
    with ctx.transaction():
        deal = None
        if stage_id is not None:
            if hasattr(deals, "move_to_stage"):
                deal = deals.move_to_stage(deal_id, stage_id)
            else:  # fallback: update(stage_id=...) is what move_to_stage does today
                deal = deals.update(deal_id, stage_id=stage_id)
        if fields:
            deal = deals.update(deal_id, **fields)
    return deal
