"""The AI assistant's hooks: its panel, record actions, CLI command and event listener.

See docs/ai-assistant.md. Everything here goes through ``ctx`` (via :mod:`.crm_tools`),
so the assistant can do no more than the plugin's permissions and the user's role allow.
"""

from crm_desktop.plugin_api import CliCommand, NotConfigured, Panel, RecordAction, hookimpl

from . import cli, crm_tools, focus, store

PANEL_PATH = "/plugins/ai-assistant"
ASK_ENTITIES = ("contact", "company", "deal")


@hookimpl
def crm_activate(ctx):
    if not (ctx.settings.get("baseUrl") and ctx.settings.get("model")):
        ctx.log.info("no model provider set: scoring and next actions work; for chat set baseUrl and model "
                     "(`crm-desktop plugin config ai-assistant baseUrl=http://127.0.0.1:11434/v1 model=NAME`)")


@hookimpl
def crm_panels(ctx):
    def factory(parent):
        from .panel import AssistantPanel  # Qt only when the panel is built

        return AssistantPanel(ctx, parent)

    return [Panel("assistant", "AI Assistant", PANEL_PATH, factory, area="tab")]


@hookimpl
def crm_record_actions(ctx, entity):
    if entity not in ASK_ENTITIES:
        return []

    def ask_about(ctx, record_ids):
        return ask_about_record(ctx, entity, record_ids)

    return [RecordAction("ask-assistant", "Ask the assistant about this", entity, ask_about,
                         permission="ai-assistant:use")]


def ask_about_record(ctx, entity, record_ids):
    """Put the first selected record in front of the assistant panel; returns its label."""
    if not record_ids:
        return None
    record = crm_tools.get(ctx, entity, record_ids[0])
    label = f"{entity} {record.display_name}"
    taken = focus.request(ctx, entity, record.id, label)
    try:
        ctx.ui.show_status(f"Ask the assistant about {label}" if taken else
                           f"Open Plugins > AI Assistant to ask about {label}")
    except NotConfigured:  # no desktop window (command line, headless host): nothing to show
        pass
    return label


@hookimpl
def crm_cli_commands(ctx):
    return [CliCommand("agent", "the AI assistant: ask it something, or print offline deal scores", cli.run,
                       cli.configure)]


@hookimpl
def crm_event(ctx, event):
    if event.name == "deal.stage_changed":
        p = event.payload or {}
        store.record_stage_move(ctx, p.get("id"), p.get("from_stage_id", p.get("old_stage_id")),
                                p.get("to_stage_id", p.get("new_stage_id")), str(p.get("status") or "") or None)
