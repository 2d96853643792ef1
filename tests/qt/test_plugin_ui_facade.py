"""ctx.ui in the desktop app (crm_desktop/ui/plugins/ui_facade.py), used by the api-tour test plugin."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from crm_desktop.plugin_api import ValidationError
from crm_desktop.ui.plugins.ui_facade import ui_factory

TOUR = Path(__file__).resolve().parents[1] / "plugins" / "api-tour"


class Window:
    def __init__(self):
        self.opened, self.status, self.threads = [], [], []

    def open_record(self, entity, record_id):
        self.threads.append(threading.current_thread() is threading.main_thread())
        self.opened.append((entity, record_id))

    def show_status(self, text, timeout_ms=4000):
        self.threads.append(threading.current_thread() is threading.main_thread())
        self.status.append(text)


@pytest.fixture
def tour(crm_plugin, qapp, memory_keyring):
    window = Window()
    host, ctx = crm_plugin(TOUR)
    host.set_ui_factory(ui_factory(window, host))
    return host, ctx, window, sys.modules["crm_plugins.api_tour.api_tour"]


def test_a_panel_shows_status_works_in_the_background_and_opens_a_record(tour, qtbot):
    host, ctx, window, module = tour
    contact = ctx.contacts.create(first_name="Ann")
    results = []
    module.show_in_window(ctx, contact.id, results)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=10000)
    assert sorted(results, key=str) == [1, "ZeroDivisionError"]
    assert window.status == ["Counting contacts..."] and window.opened == [("contact", contact.id)]
    assert all(window.threads)  # every window call ran on the GUI thread
    assert host.records["api-tour"].state.value == "active"  # a failure handed to on_error is not a crash


def test_work_of_an_unloaded_plugin_delivers_nothing(tour, qtbot):
    host, ctx, window, module = tour
    gate, done = threading.Event(), []
    ctx.ui.run_in_background(lambda: gate.wait(10), on_done=done.append)
    ui = ctx.ui
    host.disable("api-tour", persist=False)
    gate.set()
    qtbot.waitUntil(lambda: not ui.busy(), timeout=10000)
    qtbot.wait(50)
    assert done == []


def test_a_failing_callback_fails_only_its_plugin(tour, qtbot):
    host, ctx, window, module = tour
    ctx.ui.run_in_background(lambda: 1, on_done=lambda n: 1 / 0)
    qtbot.waitUntil(lambda: host.records["api-tour"].state.value == "failed", timeout=10000)
    assert "ZeroDivisionError" in host.records["api-tour"].error


def test_bad_arguments_and_confirm_off_the_gui_thread_are_refused(tour):
    host, ctx, window, module = tour
    with pytest.raises(ValidationError, match="entity"):
        ctx.ui.open_record("invoice", "x")
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_raises(lambda: ctx.ui.confirm("t", "x"))))
    thread.start()
    thread.join(10)
    assert errors and "GUI thread" in errors[0]


def _raises(fn):
    try:
        fn()
    except Exception as exc:
        return str(exc)
    return ""
