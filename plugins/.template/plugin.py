"""Hooks of __PLUGIN_NAME__. Keep imports cheap: Qt is imported only when the panel is built."""

from crm_desktop.plugin_api import MenuAction, Panel, hookimpl

from .models import Note


@hookimpl
def crm_activate(ctx):
    ctx.log.info("activated")


@hookimpl
def crm_menu_actions(ctx):
    return [MenuAction("count-contacts", "Count contacts", count_contacts)]


def count_contacts(ctx):
    count = ctx.contacts.count()
    with ctx.db.session() as session:
        session.add(Note(text=f"{count} contacts"))
    ctx.log.info("%d contacts", count)
    return count


@hookimpl
def crm_panels(ctx):
    def factory(parent):
        from .panel import build_panel  # Qt only when the panel is shown

        return build_panel(ctx, parent)

    return [Panel("main", "__PLUGIN_TITLE__", "/plugins/__PLUGIN_NAME__", factory)]
