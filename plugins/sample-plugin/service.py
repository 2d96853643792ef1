"""What the panel and the hooks share (no Qt here): one function per thing a sales helper does,
each through ``ctx`` only."""

from datetime import datetime, timedelta, timezone

from .models import SampleNote

#: the tag the sample puts on contacts it made from a lead
TAG = "sample-qualified"
#: the "model" the sample's assistant step writes as (a real assistant passes its model name)
AGENT = "sample-assistant"


def leads_for_panel(ctx):
    """The first page of leads (newest first) and whether there are more."""
    page = ctx.leads.list(limit=int(ctx.settings.get("maxRows") or 100), sort="created", descending=True,
                          status="new")
    return page.items, page.has_more


def lead_count(ctx):
    return ctx.leads.count()


def all_lead_titles(ctx, batch=50):
    """Every lead's title: page by page with the cursor, and the same with iter_all."""
    titles, cursor = [], None
    while True:
        page = ctx.leads.list(limit=batch, cursor=cursor, sort="title")
        titles += [lead.title for lead in page]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert titles == [lead.title for lead in ctx.leads.iter_all(batch=batch)]  # sorted by title too
    return titles


def add_lead(ctx, name, company=""):
    lead = ctx.leads.create(title=name, company_name=company or None, source=ctx.settings.get("defaultSource"))
    note(ctx, "lead", lead.title)
    return lead


def qualify(ctx, lead_id):
    """Convert a lead, put its deal in the pipeline's second stage, tag the contact, log the call
    and schedule the follow-up; the assistant adds a summary note as the agent."""
    conversion = ctx.leads.convert(lead_id, deal_name=None, amount="100.00")
    deal = conversion.deal
    stages = ctx.pipelines.stages(deal.pipeline_id)
    deal = ctx.deals.move_to_stage(deal.id, stages[1].id)
    contact = conversion.contact
    if contact is not None:
        ctx.tags.add("contact", contact.id, TAG)
    ctx.activities.log("call", f"Qualified {conversion.lead.title}", contact_id=contact and contact.id,
                       deal_id=deal.id)
    follow_up = ctx.activities.schedule("task", f"Send offer for {deal.title}",
                                        datetime.now(timezone.utc) + timedelta(days=3), deal_id=deal.id)
    with ctx.acting_as_agent(AGENT):
        ctx.activities.log("note", f"Summary: {conversion.lead.title} is qualified", deal_id=deal.id)
    note(ctx, "qualified", deal.title)
    return conversion, deal, follow_up


def close_deal(ctx, deal_id, won, reason=None):
    return ctx.deals.win(deal_id) if won else ctx.deals.lose(deal_id, reason=reason)


def finish(ctx, activity_id, outcome):
    return ctx.activities.complete(activity_id, outcome=outcome)


def untag(ctx, contact_id):
    ctx.tags.remove("contact", contact_id, TAG)
    return [t.name for t in ctx.tags.of("contact", contact_id)], [t.name for t in ctx.tags.list()]


def pipeline_summary(ctx):
    """(pipeline name, [(stage, probability, open deals)]) of every pipeline."""
    return [(p.name, [(s.name, s.probability, ctx.deals.count(stage_id=s.id)) for s in ctx.pipelines.stages(p.id)])
            for p in ctx.pipelines.list()]


def owner_candidates(ctx, text):
    """The signed-in user first, then the others matching ``text``."""
    me = ctx.users.current()
    return [me] + [u for u in ctx.users.search(text) if u.id != me.id]


def note(ctx, kind, text):
    with ctx.db.session() as session:
        session.add(SampleNote(kind=kind, text=text[:500]))
