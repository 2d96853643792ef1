"""The hooks a plugin may implement (DESIGN.md, Plugins).

Every hook is called with keywords, one plugin at a time, inside that
plugin's guard: an exception marks that plugin failed and nobody else notices.
An implementation may take fewer arguments than the spec (pluggy passes only
the ones it names), so specs can grow without breaking older plugins.
``docs/plugin-hooks.md`` documents each of them; a test keeps the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from crm_desktop.plugin_api.context import PluginContext
    from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
    from crm_desktop.plugin_api.records import Event

PROJECT = "crm_desktop"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def crm_activate(ctx: "PluginContext") -> None:
    """Called once when the plugin is activated (at start, enable, install or reload).

    ``ctx`` is the plugin's permission-checked facade. Do set-up here, not at import time.
    """


@hookspec
def crm_deactivate(ctx: "PluginContext") -> None:
    """Called before the plugin is disabled, reloaded, uninstalled, or the app quits.

    Release what ``crm_activate`` acquired. The host removes your menu entries,
    panels and event subscriptions itself afterwards.
    """


@hookspec
def crm_menu_actions(ctx: "PluginContext") -> "list[MenuAction]":
    """Return the :class:`~crm_desktop.plugin_api.MenuAction` entries to add to the menus."""
    raise NotImplementedError  # a spec: pluggy calls the plugins' implementations


@hookspec
def crm_panels(ctx: "PluginContext") -> "list[Panel]":
    """Return the :class:`~crm_desktop.plugin_api.Panel` views (tabs or docks) the plugin offers."""
    raise NotImplementedError  # a spec: pluggy calls the plugins' implementations


@hookspec
def crm_record_actions(ctx: "PluginContext", entity: str) -> "list[RecordAction]":
    """Return the :class:`~crm_desktop.plugin_api.RecordAction` entries for a record of ``entity``.

    ``entity`` is ``contact``, ``company``, ``lead``, ``deal`` or ``activity``.
    """
    raise NotImplementedError  # a spec: pluggy calls the plugins' implementations


@hookspec
def crm_event(ctx: "PluginContext", event: "Event") -> None:
    """Receive an event: core ones (``contact.created``, ``deal.stage_changed``, ...),
    ``sync.finished``, and those other plugins publish with ``ctx.events.publish``.

    ``event`` has ``name``, ``payload`` (plain data) and ``source``. Called in
    the thread that published the event; keep it short.
    """


@hookspec
def crm_cli_commands(ctx: "PluginContext") -> "list[CliCommand]":
    """Return :class:`~crm_desktop.plugin_api.CliCommand` subcommands to add to ``crm-desktop``."""
    raise NotImplementedError  # a spec: pluggy calls the plugins' implementations
