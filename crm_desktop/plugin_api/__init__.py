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

from crm_desktop.plugin_api.context import (
    ApiFacade, DbFacade, EventsFacade, HttpFacade, PluginContext, SecretsFacade, SettingsFacade,
)
from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
from crm_desktop.plugin_api.data import (
    ActivitiesFacade, CompaniesFacade, ContactsFacade, DealsFacade, LeadsFacade, PipelinesFacade, RecordsFacade,
    TagsFacade, UsersFacade,
)
from crm_desktop.plugin_api.errors import NotConfigured, NotFound, PermissionDenied, PluginError, ValidationError
from crm_desktop.plugin_api.hookspecs import PROJECT
from crm_desktop.plugin_api.models import declarative_base_for, table_prefix
from crm_desktop.plugin_api.paging import MAX_LIMIT, Page
from crm_desktop.plugin_api.records import (
    Activity, ActivityKind, Company, Contact, Conversion, Deal, DealStatus, Event, Lead, LeadStatus, Pipeline, Role,
    Stage, Tag, User,
)
from crm_desktop.plugin_api.ui import UiFacade

#: Marks a function of a plugin's main module as a hook implementation (``@hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "MAX_LIMIT", "ActivitiesFacade", "Activity", "ActivityKind", "ApiFacade", "CliCommand", "CompaniesFacade",
    "Company", "Contact", "ContactsFacade", "Conversion", "DbFacade", "Deal", "DealStatus", "DealsFacade", "Event",
    "EventsFacade", "HttpFacade", "Lead", "LeadStatus", "LeadsFacade", "MenuAction", "NotConfigured", "NotFound",
    "Page", "Panel", "PermissionDenied", "Pipeline", "PipelinesFacade", "PluginContext", "PluginError",
    "RecordAction", "RecordsFacade", "Role", "SecretsFacade", "SettingsFacade", "Stage", "Tag", "TagsFacade",
    "UiFacade", "User", "UsersFacade", "ValidationError", "declarative_base_for", "hookimpl", "table_prefix",
]
