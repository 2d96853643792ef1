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


# -- ctx.ui.save_file: the host asks where, and writes the file atomically ---------------------

def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_save_file_writes_what_the_plugin_gives_to_the_file_the_user_chose(tour, tmp_path):
    host, ctx, window, module = tour
    asked = []
    ctx.ui.ask_save_path = lambda parent, title, start, filters: (
        asked.append((title, start, filters)) or (str(tmp_path / "pipeline"), "CSV file (*.csv)"))
    path = ctx.ui.save_file("Save the chart", "pipeline.csv", ["CSV file (*.csv)", "All files (*)"],
                            lambda f: f.write(b"stage,value\nWon,10\n"))
    # the chosen name had no extension: the chosen filter's is added
    assert path == tmp_path / "pipeline.csv"
    assert path.read_bytes() == b"stage,value\nWon,10\n"
    assert asked[0][0] == "Save the chart" and asked[0][1].endswith("pipeline.csv")
    assert asked[0][2] == "CSV file (*.csv);;All files (*)"
    assert _leftovers(tmp_path) == [] and window.status == []
    # the next dialog opens where the last file went
    ctx.ui.save_file("Again", "b.csv", ["CSV file (*.csv)"], lambda f: f.write(b"x"))
    assert asked[1][1] == str(tmp_path / "b.csv")


def test_a_failing_write_leaves_the_old_file_and_nothing_else(tour, tmp_path):
    host, ctx, window, module = tour
    target = tmp_path / "report.csv"
    target.write_bytes(b"the old report")
    ctx.ui.ask_save_path = lambda *args: (str(target), "CSV file (*.csv)")

    def half_then_fail(f):
        f.write(b"half of the new rep")
        raise RuntimeError("the plugin broke mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        ctx.ui.save_file("Save", "report.csv", ["CSV file (*.csv)"], half_then_fail)
    assert target.read_bytes() == b"the old report" and _leftovers(tmp_path) == []
    # a complete write replaces it
    assert ctx.ui.save_file("Save", "report.csv", ["CSV file (*.csv)"], lambda f: f.write(b"new")) == target
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == []


def test_a_cancelled_dialog_writes_nothing_and_an_unwritable_place_is_one_sentence(tour, tmp_path):
    host, ctx, window, module = tour
    called = []
    ctx.ui.ask_save_path = lambda *args: ("", "")
    assert ctx.ui.save_file("Save", "a.png", ["PNG image (*.png)"], called.append) is None
    assert called == [] and window.status == []
    missing = tmp_path / "gone" / "a.png"
    ctx.ui.ask_save_path = lambda *args: (str(missing), "PNG image (*.png)")
    assert ctx.ui.save_file("Save", "a.png", ["PNG image (*.png)"], lambda f: f.write(b"png")) is None
    assert window.status == [f"Could not save a.png in {missing.parent}: No such file or directory."]
    assert not missing.parent.exists()


def test_save_file_refuses_bad_arguments_and_other_threads(tour):
    host, ctx, window, module = tour
    ctx.ui.ask_save_path = lambda *args: pytest.fail("no dialog for bad arguments")
    with pytest.raises(ValidationError, match="filters"):
        ctx.ui.save_file("Save", "a.csv", "CSV file (*.csv)", lambda f: None)
    with pytest.raises(ValidationError, match="filters"):
        ctx.ui.save_file("Save", "a.csv", ["*.csv"], lambda f: None)
    with pytest.raises(ValidationError, match="suggested_name"):
        ctx.ui.save_file("Save", "", ["CSV file (*.csv)"], lambda f: None)
    with pytest.raises(ValidationError, match="write"):
        ctx.ui.save_file("Save", "a.csv", ["CSV file (*.csv)"], b"data")
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_raises(
        lambda: ctx.ui.save_file("Save", "a.csv", ["CSV file (*.csv)"], lambda f: None))))
    thread.start()
    thread.join(10)
    assert errors and "GUI thread" in errors[0]
