"""The sample plugin's hooks: one of each kind the API offers."""

from crm_desktop.plugin_api import MenuAction, Panel, RecordAction, hookimpl

from .models import SampleNote
from .service import lead_count, note

PANEL_PATH = "/plugins/sample"


@hookimpl
def crm_activate(ctx):
    if not ctx.settings.get("apiKey"):
        ctx.log.warning("apiKey is not set: `crm-desktop plugin config sample-plugin apiKey=...`")
    # clean-up registered where the thing is made; runs on disable, reload and quit
    ctx.on_dispose(lambda: ctx.log.info("sample-plugin disposed"))


@hookimpl
def crm_menu_actions(ctx):
    return [MenuAction("count-leads", "Count leads", count_leads, menu="Tools",
                       icon="puzzle-piece", permission="sample:access")]


def count_leads(ctx):
    count = lead_count(ctx)
    note(ctx, "menu", f"{count} leads")
    ctx.log.info("%d leads", count)
    return count


@hookimpl
def crm_panels(ctx):
    def factory(parent):
        from .panel import LeadsPanel  # Qt only when the panel is built

        return LeadsPanel(ctx, parent)

    return [Panel("leads", "Sample leads", PANEL_PATH, factory, area="tab")]


@hookimpl
def crm_record_actions(ctx, entity):
    if entity != "contact":
        return []
    return [RecordAction("sample-note", "Add a sample note", "contact", note_contacts)]


def note_contacts(ctx, record_ids):
    names = [ctx.contacts.get(i).display_name for i in record_ids]
    for name in names:
        note(ctx, "contact", name)
    return names


@hookimpl
def crm_event(ctx, event):
    if event.name in ("contact.created", "lead.created", "deal.stage_changed"):
        note(ctx, "event", event.name)


def notes(ctx):
    """Every note, oldest first (for tests and the panel)."""
    with ctx.db.session() as session:
        return [(n.kind, n.text) for n in session.query(SampleNote).order_by(SampleNote.id)]
