"""The public API for crm-desktop plugins.

A plugin imports only this package (plus PySide6 and its own modules)::

    from crm_desktop.plugin_api import MenuAction, hookimpl

    @hookimpl
    def crm_menu_actions(ctx):
        return [MenuAction("hello", "Say hello", lambda ctx: ctx.log.info("hello"))]

See ``docs/plugin-guide.md`` and ``docs/plugin-hooks.md``. Importing this
package never imports Qt, SQLAlchemy or the app's internals (storage, services,
the plugin host): it defines what plugins see, the host implements it.
"""

from __future__ import annotations

import pluggy

from crm_desktop.plugin_api.context import PluginContext
from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
from crm_desktop.plugin_api.errors import NotConfigured, NotFound, PermissionDenied, PluginError, ValidationError
from crm_desktop.plugin_api.hookspecs import PROJECT
from crm_desktop.plugin_api.models import declarative_base_for, table_prefix
from crm_desktop.plugin_api.records import (
    Activity, ActivityKind, Company, Contact, Deal, DealStatus, Event, Lead, LeadStatus, Pipeline, Role, Stage,
    Tag, User,
)

#: Marks a function of a plugin's main module as a hook implementation (``@hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "Activity", "ActivityKind", "CliCommand", "Company", "Contact", "Deal", "DealStatus", "Event", "Lead",
    "LeadStatus", "MenuAction", "NotConfigured", "NotFound", "Panel", "PermissionDenied", "Pipeline",
    "PluginContext", "PluginError", "RecordAction", "Role", "Stage", "Tag", "User", "ValidationError",
    "declarative_base_for", "hookimpl", "table_prefix",
]
