"""The plugin admin panel: lists plugins with their states, and its buttons do what they say."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_plugin_fakes import FakeHost, FakePlugin  # noqa: E402

from crm_desktop.plugin_host.lifecycle import PluginState  # noqa: E402
from crm_desktop.ui.plugin_admin import PluginAdminPanel  # noqa: E402


def rows(panel):
    """(plugin name, state text) of every table row, as the user reads them."""
    out = []
    for row in range(panel.table.rowCount()):
        out.append((panel.table.item(row, 0).text().split("·")[-1].strip(), panel.table.item(row, 2).text()))
    return out


@pytest.fixture
def fake_host():
    host = FakeHost({"alpha": FakePlugin(), "beta": FakePlugin()})
    host.records["beta"].state = PluginState.FAILED
    host.records["beta"].error = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad beta"
    return host


def test_lists_plugins_with_state_and_error(qtbot, fake_host):
    panel = PluginAdminPanel(fake_host)
    qtbot.addWidget(panel)
    panel.show()
    assert rows(panel) == [("alpha", "active"), ("beta", "failed")]
    panel.select("beta")
    assert panel.error_box.isVisible()
    assert "ValueError: bad beta" in panel.error_summary.text()
    assert not panel.traceback.isVisible()
    panel.traceback_toggle.click()
    assert panel.traceback.isVisible() and 'File "x.py"' in panel.traceback.toPlainText()
    assert panel.enable_button.isEnabled() and not panel.settings_button.isEnabled()
    panel.select("alpha")
    assert not panel.error_box.isVisible()
    assert not panel.enable_button.isEnabled() and panel.disable_button.isEnabled()


def test_buttons_call_the_host_and_the_table_follows(qtbot, fake_host, monkeypatch):
    panel = PluginAdminPanel(fake_host)
    qtbot.addWidget(panel)
    panel.select("alpha")
    monkeypatch.setattr(panel, "confirm", lambda title, text: False)
    panel.disable_button.click()
    assert fake_host.records["alpha"].state is PluginState.ACTIVE  # cancelled: nothing happened
    monkeypatch.setattr(panel, "confirm", lambda title, text: True)
    panel.disable_button.click()
    assert ("alpha", "disabled") in rows(panel)
    assert "alpha disabled" in panel.message.text()
    panel.enable_button.click()
    assert ("alpha", "active") in rows(panel)

    panel.select("beta")
    panel.reload_button.click()
    assert ("reload", "beta") in fake_host.calls and ("beta", "active") in rows(panel)

    monkeypatch.setattr(panel, "ask_uninstall", lambda name: "keep")
    panel.select("beta")
    panel.uninstall_button.click()
    assert ("uninstall", "beta", False) in fake_host.calls
    assert [name for name, _ in rows(panel)] == ["alpha"]


def test_refreshes_when_the_host_reports_a_change_made_elsewhere(qtbot, fake_host):
    panel = PluginAdminPanel(fake_host)
    qtbot.addWidget(panel)
    fake_host.disable("alpha")  # e.g. from the --dev watcher or a failure at run time
    qtbot.waitUntil(lambda: ("alpha", "disabled") in rows(panel))


def test_host_errors_are_shown_not_raised(qtbot, fake_host):
    def refuse(name):
        raise RuntimeError("plugin alpha: dependency gamma is missing")

    fake_host.enable = refuse
    fake_host.records["alpha"].state = PluginState.DISABLED
    panel = PluginAdminPanel(fake_host)
    qtbot.addWidget(panel)
    panel.show()
    panel.select("alpha")
    panel.enable_button.click()
    assert panel.message.isVisible()
    assert "dependency gamma is missing" in panel.message.text()
