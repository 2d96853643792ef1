"""What the panel and the hooks share (no Qt here)."""

from .models import SampleNote


def leads_for_panel(ctx):
    return ctx.leads.list(limit=int(ctx.settings.get("maxRows") or 100))


def add_lead(ctx, name, company=""):
    lead = ctx.leads.create(title=name, company_name=company or None, source=ctx.settings.get("defaultSource"))
    note(ctx, "lead", lead.title)
    return lead


def note(ctx, kind, text):
    with ctx.db.session() as session:
        session.add(SampleNote(kind=kind, text=text[:500]))
