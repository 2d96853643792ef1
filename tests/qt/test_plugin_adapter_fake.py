"""The Qt adapter against the interface fakes: cases the real host makes awkward to stage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

sys.path.insert(0, str(Path(__file__).parent))
from test_plugin_fakes import (  # noqa: E402
    FakeHost, FakeMenuAction, FakeMenuEntry, FakePanel, FakePlugin, FakeRecordAction, FakeWindow,
)

from crm_desktop.plugin_host.lifecycle import PluginState  # noqa: E402
from crm_desktop.ui.plugins.adapter import QtPluginAdapter, page_key  # noqa: E402


def _titles(menu):
    return [a.text() for a in menu.actions()]


@pytest.fixture
def window(qtbot):
    w = FakeWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_contributions_appear_and_vanish_on_disable(qtbot, window):
    hits = []
    plugin = FakePlugin(
        menu_actions=[FakeMenuAction("hello", "Say hello", lambda ctx: hits.append(ctx), shortcut="Ctrl+Alt+H")],
        panels=[FakePanel("main", "Hello panel", "/plugins/hello", lambda parent: QLabel("hi")),
                FakePanel("side", "Hello dock", "/plugins/hello/dock", lambda parent: QLabel("dock"), area="dock")],
        record_actions=[FakeRecordAction("tag", "Tag with hello", "contact", lambda ctx, ids: hits.append(ids))],
        declared=[FakeMenuEntry("Hello", "/plugins/hello")],
    )
    host = FakeHost({"hello": plugin})
    adapter = QtPluginAdapter(window, host).start()

    assert "Say hello" in _titles(window.menu("Tools"))
    assert "Hello" in _titles(window.menu("Plugins"))
    assert set(window.pages) == {page_key("hello", "main"), page_key("hello", "side")}
    window.menu("Tools").actions()[-1].trigger()
    assert hits == ["ctx:hello"]
    menu = window.context_menu("contact", ["c1", "c2"])
    [action] = [a for a in menu.actions() if a.text() == "Tag with hello"]
    action.trigger()
    assert hits[-1] == ["c1", "c2"]
    assert window.context_menu("deal", ["d1"]).actions() == []

    window.menu("Plugins").actions()[-1].trigger()  # the declared entry opens the panel
    assert window.stack.currentWidget().text() == "hi"

    host.disable("hello")
    assert "Say hello" not in _titles(window.menu("Tools"))
    assert "Hello" not in _titles(window.menu("Plugins"))
    assert window.pages == {}
    assert window.paths == {}
    assert window.context_menu("contact", ["c1"]).actions() == []
    assert not [a for a in window.actions() if a.text() == "Say hello"]
    adapter.stop()


def test_reload_keeps_the_open_panel_open(qtbot, window):
    version = {"n": 1}
    plugin = FakePlugin(panels=[FakePanel("main", "Counter", "/p/c", lambda parent: QLabel(f"v{version['n']}"))])
    host = FakeHost({"counter": plugin})
    QtPluginAdapter(window, host).start()
    window.show_page(page_key("counter", "main"))
    assert window.stack.currentWidget().text() == "v1"

    version["n"] = 2
    host.reload("counter")
    assert window.stack.currentWidget().text() == "v2"


def test_raising_factory_fails_only_that_plugin_and_shows_one_dialog(qtbot, window):
    def broken(parent):
        raise RuntimeError("cannot build the chart")

    host = FakeHost({
        "broken": FakePlugin(panels=[FakePanel("chart", "Chart", "/p/chart", broken)],
                             menu_actions=[FakeMenuAction("x", "Broken action", lambda ctx: None)]),
        "good": FakePlugin(panels=[FakePanel("main", "Good", "/p/good", lambda parent: QLabel("good"))]),
    })
    adapter = QtPluginAdapter(window, host).start()
    with qtbot.waitSignal(adapter.failures.shown, timeout=3000) as shown:
        pass
    dialog = shown.args[0]
    assert [f.plugin for f in dialog.failures] == ["broken"]
    assert "cannot build the chart" in dialog.details.toPlainText()
    dialog.copy_details()
    from PySide6.QtGui import QGuiApplication
    assert "RuntimeError: cannot build the chart" in QGuiApplication.clipboard().text()

    assert host.records["broken"].state is PluginState.FAILED
    assert "Broken action" not in _titles(window.menu("Tools"))
    placeholder = window.pages[page_key("broken", "chart")][0]
    assert "broken" in placeholder.message and "cannot build the chart" in placeholder.message
    assert window.pages[page_key("good", "main")][0].text() == "good"


def test_declared_menu_is_filtered_by_permission_and_shown_before_activation(qtbot, window):
    plugin = FakePlugin(declared=[FakeMenuEntry("Reports", "/p/reports", permissions=["reports:access"]),
                                  FakeMenuEntry("Secret admin", "/p/admin", permissions=["admin:access"])])
    host = FakeHost({"reports": plugin}, granted={"reports:access"})
    host.records["reports"].state = PluginState.DISABLED  # manifest read and checked, code not imported yet
    host.eligible.add("reports")
    QtPluginAdapter(window, host).start()
    titles = _titles(window.menu("Plugins"))
    assert "Reports" in titles and "Secret admin" not in titles
    window.menu("Plugins").actions()[-1].trigger()
    assert "not running" in window.status[-1]
