"""A plugin that walks through every verb of the plugin API (a test fixture, not shipped).

Each function is one thing a plugin author does; the tests call them and check what a
user would see in the CRM afterwards.
"""

from datetime import datetime, timedelta, timezone

from crm_desktop.plugin_api import (
    Conversion, NotConfigured, Page, ValidationError, hookimpl,
)


@hookimpl
def crm_activate(ctx):
    # registered in this order; run in reverse on disable, reload and quit
    ctx.on_dispose(lambda: _trail(ctx, "first registered"))
    ctx.on_dispose(lambda: 1 / 0)  # a failing one: the others still run
    ctx.on_dispose(lambda: _trail(ctx, "last registered"))


def _trail(ctx, text):
    with open(ctx.data_dir / "disposed.txt", "a", encoding="utf-8") as fh:
        fh.write(text + "\n")


def make_contacts(ctx, count):
    with ctx.transaction():
        for i in range(count):
            ctx.contacts.create(first_name=f"Person{i:04d}", last_name="Tour")


def walk_pages(ctx, limit):
    """Every contact's name, read page by page with cursors; and the number of pages."""
    names, pages, cursor = [], 0, None
    while True:
        page = ctx.contacts.list(limit=limit, cursor=cursor, sort="name")
        assert isinstance(page, Page)
        pages += 1
        names += [c.display_name for c in page.items]
        if not page.has_more:
            return names, pages
        cursor = page.next_cursor


def count_and_iterate(ctx):
    return ctx.contacts.count(), [c.display_name for c in ctx.contacts.iter_all(batch=7)]


def sell(ctx, company_name):
    """A deal through the pipeline: stages, move, win; and one lost with a reason."""
    pipeline = ctx.pipelines.list()[0]
    stages = ctx.pipelines.stages(pipeline.id)
    company = ctx.companies.create(name=company_name)
    deal = ctx.deals.create(title=f"{company_name} licence", company_id=company.id, amount="1200.00")
    moved = ctx.deals.move_to_stage(deal.id, stages[2].id)
    won = ctx.deals.win(deal.id)
    other = ctx.deals.create(title=f"{company_name} support", company_id=company.id)
    lost = ctx.deals.lose(other.id, reason="went with a competitor")
    return stages, moved, won, lost


def follow_up(ctx, contact_id):
    """Log a call, schedule a meeting, complete it with an outcome."""
    call = ctx.activities.log("call", "Intro call", contact_id=contact_id, notes="Interested")
    meeting = ctx.activities.schedule("meeting", "Demo", datetime.now(timezone.utc) + timedelta(days=2),
                                      contact_id=contact_id)
    open_before = ctx.activities.count(contact_id=contact_id, open_only=True)
    done = ctx.activities.complete(meeting.id, outcome="Wants a quote")
    return call, meeting, open_before, done


def convert(ctx, title, person, company):
    first, last = person.split(" ", 1)
    lead = ctx.leads.create(title=title, first_name=first, last_name=last, company_name=company)
    conversion = ctx.leads.convert(lead.id, deal_name=f"{company} first order", amount=500)
    assert isinstance(conversion, Conversion)
    return conversion


def tag(ctx, contact_id):
    ctx.tags.add("contact", contact_id, "VIP")
    ctx.tags.add("contact", contact_id, "vip")  # the same tag: no change
    ctx.tags.add("contact", contact_id, "Newsletter")
    after_add = [t.name for t in ctx.tags.of("contact", contact_id)]
    ctx.tags.remove("contact", contact_id, "newsletter")
    return after_add, [t.name for t in ctx.tags.of("contact", contact_id)], [t.name for t in ctx.tags.list()]


def who(ctx, text):
    return ctx.users.current(), ctx.users.search(text)


def assistant_writes(ctx, model, first_name):
    """What an AI assistant does: its writes are audited as the agent, on behalf of the user."""
    with ctx.acting_as_agent(model):
        return ctx.contacts.create(first_name=first_name, last_name="Agent")


def bad_calls(ctx):
    """Each wrong call and the one line it gives."""
    out = {}
    for label, call in (("filter", lambda: ctx.contacts.list(colour="red")),
                        ("count filter", lambda: ctx.contacts.count(stage_id="x")),
                        ("limit", lambda: ctx.contacts.list(limit=5000)),
                        ("cursor", lambda: ctx.contacts.list(cursor="not-a-cursor")),
                        ("agent", lambda: ctx.acting_as_agent("").__enter__())):
        try:
            call()
        except ValidationError as exc:
            out[label] = str(exc)
    try:
        ctx.ui.show_status("hello")
    except NotConfigured as exc:
        out["ui"] = str(exc)
    return out


def show_in_window(ctx, contact_id, results):
    """What a panel does: status, background work with its result on the GUI thread, open a record."""
    ctx.ui.show_status("Counting contacts...")
    ctx.ui.run_in_background(lambda: ctx.contacts.count(),
                             on_done=lambda n: (results.append(n), ctx.ui.open_record("contact", contact_id)))
    ctx.ui.run_in_background(lambda: 1 / 0, on_error=lambda exc: results.append(type(exc).__name__))
