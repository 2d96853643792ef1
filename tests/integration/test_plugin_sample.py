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
    # it may not write users: not in its manifest
    from crm_desktop.plugin_api import PermissionDenied

    with pytest.raises(PermissionDenied, match="'users:write'"):
        ctx.users.create(username="x")


def test_sample_plugin_uses_every_new_verb(crm_plugin, memory_keyring):
    host, ctx = crm_plugin(SAMPLE, settings={"apiKey": "k"})
    service = sys.modules["crm_plugins.sample_plugin.service"]
    for i in range(7):
        service.add_lead(ctx, f"Lead {i}", f"Company {i}")
    assert service.lead_count(ctx) == 7
    assert service.all_lead_titles(ctx, batch=3) == [f"Lead {i}" for i in range(7)]
    host.core.services.users.create(username="mia", display_name="Mia Wong")
    assert [u.username for u in service.owner_candidates(ctx, "wong")] == ["local", "mia"]
    lead = ctx.leads.create(title="Big one", first_name="Pia", last_name="Berg", company_name="Company 0")
    conversion, deal, follow_up = service.qualify(ctx, lead.id)
    assert conversion.company.name == "Company 0" and conversion.contact.display_name == "Pia Berg"
    assert deal.stage_name == "Qualified" and not follow_up.is_done
    assert [t.name for t in ctx.tags.of("contact", conversion.contact.id)] == [service.TAG]
    summary = dict(service.pipeline_summary(ctx))["Sales"]
    assert ("Qualified", 25, 1) in summary
    notes_by = [(e.actor_kind, e.actor_name, e.on_behalf_of) for e in host.core.services.audit.recent(limit=50)
                if e.entity == "activity" and e.action == "create"]
    assert ("agent", service.AGENT, "local") in notes_by and ("plugin", "sample-plugin", None) in notes_by
    assert service.finish(ctx, follow_up.id, "offer sent").body == "Outcome: offer sent"
    assert service.close_deal(ctx, deal.id, won=False, reason="budget").status.value == "lost"
    assert service.close_deal(ctx, deal.id, won=True).status.value == "won"
    tags_left, every_tag = service.untag(ctx, conversion.contact.id)
    assert tags_left == [] and service.TAG in every_tag


def test_sample_plugin_panel_qualifies_through_ctx_ui(crm_plugin, qapp, qtbot, memory_keyring, monkeypatch):
    """The panel asks, qualifies in the background and opens the deal, all through ctx.ui."""
    from PySide6.QtWidgets import QMessageBox

    from crm_desktop.ui.plugins.ui_facade import ui_factory

    class Window:  # what ctx.ui needs of the main window
        def __init__(self):
            self.opened, self.status = [], []

        def open_record(self, entity, record_id):
            self.opened.append((entity, record_id))

        def show_status(self, text, timeout_ms=4000):
            self.status.append(text)

    window = Window()
    host, ctx = crm_plugin(SAMPLE)
    host.set_ui_factory(ui_factory(window, host))
    lead = ctx.leads.create(title="Panel lead", first_name="Pia", company_name="Pia AG")
    widget = host.guard("sample-plugin", "panel factory", host.panels("sample-plugin")[0].factory, None)
    widget.list.setCurrentRow(0)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    widget.qualify.click()
    qtbot.waitUntil(lambda: widget.status.text().startswith("Qualified"), timeout=10000)
    deal_id = ctx.leads.get(lead.id).converted_deal_id
    assert window.opened == [("deal", deal_id)]
    assert window.status == ["Panel lead is now deal Panel lead"]
    assert widget.list.count() == 0  # the qualified lead left the list of new leads
    host.disable("sample-plugin", persist=False)
    widget.deleteLater()


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
    widget.list.setCurrentRow(0)
    widget.qualify.click()  # no window here: ctx.ui is not configured, and the panel says so
    assert widget.status.text() == "Qualifying needs the desktop app"
    widget.deleteLater()


def test_a_scaffolded_plugin_passes_its_own_generated_test(tmp_path):
    from crm_desktop.plugin_host.scaffold import scaffold

    folder = scaffold("fresh-idea", tmp_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
