"""The reporting plugin's hooks: the dashboard panel, and a refresh when deals move or sync ends."""

from __future__ import annotations

import weakref

from crm_desktop.plugin_api import Panel, hookimpl

PANEL_PATH = "/plugins/reporting"
#: events after which the numbers may have changed
REFRESH_EVENTS = frozenset({"deal.stage_changed", "sync.finished"})

#: the open dashboard panels (weak: a closed panel just drops out)
_panels: "weakref.WeakSet" = weakref.WeakSet()


@hookimpl
def crm_panels(ctx):
    def factory(parent):
        from .panel import DashboardPanel  # Qt only when the panel is built

        panel = DashboardPanel(ctx, parent)
        _panels.add(panel)
        return panel

    return [Panel("dashboard", "Reports", PANEL_PATH, factory, area="tab")]


@hookimpl
def crm_event(ctx, event):
    if event.name in REFRESH_EVENTS:
        for panel in list(_panels):
            panel.request_refresh()  # thread-safe; loads off the GUI thread


@hookimpl
def crm_deactivate(ctx):
    for panel in list(_panels):
        panel.dispose()
    _panels.clear()
