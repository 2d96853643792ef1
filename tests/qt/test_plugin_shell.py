"""Plugin contributions in the real main window: they appear, work, and leave nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings
from PySide6.QtWidgets import QLabel, QMenu

sys.path.insert(0, str(Path(__file__).parent))
from test_plugin_fakes import (  # noqa: E402
    FakeHost, FakeMenuAction, FakeMenuEntry, FakePanel, FakePlugin, FakeRecordAction,
)

from crm_desktop.ui.plugins.adapter import QtPluginAdapter, page_key  # noqa: E402
from crm_desktop.ui.shell import MainWindow  # noqa: E402


@pytest.fixture
def window(qtbot, core, tmp_path):
    w = MainWindow(core.services, settings=QSettings(str(tmp_path / "ui.ini"), QSettings.Format.IniFormat),
                   home=core.home)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


def sidebar_titles(window):
    return [window.sidebar.item(i).text() for i in range(window.sidebar.count())]


def all_action_texts(window):
    texts = [a.text() for a in window.actions()]
    for title in ("File", "Edit", "View", "Tools", "Plugins", "Help"):
        texts += [a.text() for a in window.menu(title).actions()]
    return texts


def test_contributions_in_the_main_window_vanish_on_disable(qtbot, window, core, monkeypatch):
    calls = []
    plugin = FakePlugin(
        menu_actions=[FakeMenuAction("hello", "Say hello", lambda ctx: calls.append("menu"), shortcut="Ctrl+Alt+H")],
        panels=[FakePanel("main", "Hello page", "/plugins/hello", lambda parent: QLabel("hello page")),
                FakePanel("dock", "Hello dock", "/plugins/hello/dock", lambda parent: QLabel("dock"), area="dock")],
        record_actions=[FakeRecordAction("greet", "Greet contact", "contact", lambda ctx, ids: calls.append(ids))],
        declared=[FakeMenuEntry("Hello", "/plugins/hello", icon="plugins")],
    )
    host = FakeHost({"hello": plugin})
    before_actions = all_action_texts(window)
    before_sidebar = sidebar_titles(window)
    QtPluginAdapter(window, host).start()

    assert "Hello page" in sidebar_titles(window)
    assert "Say hello" in [a.text() for a in window.menu("Tools").actions()]
    assert "Hello" in [a.text() for a in window.menu("Plugins").actions()]
    assert window.page(page_key("hello", "dock")).text() == "dock"

    [entry] = [a for a in window.menu("Plugins").actions() if a.text() == "Hello"]
    entry.trigger()
    assert window.current_page() == page_key("hello", "main")
    assert window.stack.currentWidget().text() == "hello page"

    # the record action shows in the contacts list's context menu and gets the selected ids
    contact = core.services.contacts.create(first_name="Ada", last_name="Lovelace")
    view = window.lists["contacts"]
    window.show_page("contacts")  # rows load for what is on screen
    view.refresh()

    def selected():
        view.table.selectRow(0)
        return view.selected_ids() == [contact.id]

    qtbot.waitUntil(selected)  # rows arrive from a background page fetch
    shown = []
    monkeypatch.setattr(QMenu, "popup", lambda self, *a: shown.append(self))
    view._context_menu(QPoint(5, 5))
    [greet] = [a for a in shown[-1].actions() if a.text() == "Greet contact"]
    greet.trigger()
    assert calls == [[contact.id]]

    host.disable("hello")
    assert all_action_texts(window) == before_actions
    assert sidebar_titles(window) == before_sidebar
    assert window.page(page_key("hello", "dock")) is None
    view._context_menu(QPoint(5, 5))
    assert "Greet contact" not in [a.text() for a in shown[-1].actions()]
