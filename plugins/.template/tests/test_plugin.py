"""Tests of __PLUGIN_NAME__ against a temporary home (fixture from crm_desktop.plugin_api.testing)."""

from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent


def test_it_activates_and_counts_contacts(crm_plugin):
    host, ctx = crm_plugin(PLUGIN)
    assert host.records["__PLUGIN_NAME__"].state.value == "active"
    action = host.menu_actions("__PLUGIN_NAME__")[0]
    assert action.callback(ctx) == 0
