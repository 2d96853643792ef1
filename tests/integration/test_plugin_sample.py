"""The bundled sample plugin, loaded with the author-facing pytest fixture (crm_plugin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "plugins" / "sample-plugin"


def notes(host, ctx):
    return sys.modules["crm_plugins.sample_plugin.sample_plugin"].notes(ctx)


def test_sample_plugin_uses_every_part_of_the_api(crm_plugin, memory_keyring):
    host, ctx = crm_plugin(SAMPLE, settings={"apiKey": "k-123", "maxRows": 5})
    record = host.records["sample-plugin"]
    assert record.state.value == "active", record.error
    assert ctx.settings.get("apiKey") == "k-123" and ctx.settings["maxRows"] == 5
    assert [e.title for e in host.declared_menu("sample-plugin")] == ["Sample Plugin"]
    assert [p.path for p in host.panels("sample-plugin")] == ["/plugins/sample"]
    # the menu action and the panel's service write leads and notes with the plugin as actor
    service = sys.modules["crm_plugins.sample_plugin.service"]
    lead = service.add_lead(ctx, "Acme deal", "Acme")
    assert lead.source == "sample-plugin"
    assert host.menu_actions("sample-plugin")[0].callback(ctx) == 1
    history = host.core.services.audit.for_record("lead", lead.id)
    assert [(e.actor_kind, e.actor_name) for e in history] == [("plugin", "sample-plugin")]
    # a record action on contacts, and the event subscriber
    contact = host.core.services.contacts.create(first_name="Ann", last_name="Lee")
    action = host.record_actions("sample-plugin", "contact")[0]
    assert action.callback(ctx, [contact.id]) == ["Ann Lee"]
    assert host.record_actions("sample-plugin", "deal") == []
    assert notes(host, ctx) == [("lead", "Acme deal"), ("menu", "1 leads"), ("event", "contact.created"),
                                ("contact", "Ann Lee")]
    # it may not write contacts: not in its manifest
    from crm_desktop.plugin_api import PermissionDenied

    with pytest.raises(PermissionDenied, match="'contacts:write'"):
        ctx.contacts.create(first_name="X")


def test_sample_plugin_panel_builds_offscreen(crm_plugin, qapp):
    host, ctx = crm_plugin(SAMPLE)
    ctx.leads.create(title="Listed lead")
    panel = host.panels("sample-plugin")[0]
    widget = host.guard("sample-plugin", "panel factory", panel.factory, None)
    assert widget is not None and widget.list.count() == 1 and widget.list.item(0).text() == "Listed lead"
    widget.name.setText("Typed lead")
    widget.add.click()
    assert widget.status.text() == "Added Typed lead" and widget.list.count() == 2
    widget.add.click()
    assert widget.status.text() == "A lead needs a name"
    widget.deleteLater()


def test_a_scaffolded_plugin_passes_its_own_generated_test(tmp_path):
    from crm_desktop.plugin_host.scaffold import scaffold

    folder = scaffold("fresh-idea", tmp_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
