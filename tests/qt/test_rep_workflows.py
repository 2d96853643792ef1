"""What a rep noticed (issue 8, section 4) and the UI's thread model (section 2), as a user sees it."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
import threading
import time
import types
from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from conftest import open_and_wait, show_and_wait, wait_rows_loaded


def contacts_page(window):
    window.show_page("contacts")
    return window.lists["contacts"]


def two_contacts(services):
    ada = services.contacts.create(first_name="Ada", last_name="Lovelace")
    bob = services.contacts.create(first_name="Bob", last_name="Builder")
    return ada, bob


def select_row_of(qtbot, view, record_id):
    wait_rows_loaded(qtbot, view.model, rows=(0, 1))
    view.table.selectRow(view.model.row_of(record_id))


# -- Today's tiles ----------------------------------------------------------------------------------

def test_today_tiles_count_everything_and_capped_lists_say_how_many_more(qtbot, services):
    from crm_desktop.ui.today import TodayView

    now = datetime.now(timezone.utc).astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    for n in range(270):
        services.activities.schedule("task", f"Overdue {n:03}", now - timedelta(days=3, minutes=n),
                                     contact_id=contact.id)
    view = TodayView(services, now=now)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.currentWidget() is view.board)
    assert view.tiles["overdue"].value.text() == "270"          # was "200": the length of the capped list
    assert view.overdue.title.text().endswith("·  270")
    assert view.overdue.list.count() == 200                       # the list may stay capped...
    assert not view.overdue.more.isHidden() and view.overdue.more.text() == "and 70 more"  # ...and says so
    assert view.today.more.isHidden()


# -- Unsaved edits ------------------------------------------------------------------------------------

def test_selecting_another_row_with_unsaved_edits_asks_and_cancel_keeps_them(qtbot, main_window, services,
                                                                              unsaved_answers):
    ada, bob = two_contacts(services)
    view = contacts_page(main_window)
    select_row_of(qtbot, view, ada.id)
    assert view.detail.record.id == ada.id
    view.detail.form.inputs["job_title"].setText("Analyst")  # typed, not saved
    unsaved_answers.append("cancel")
    view.table.selectRow(view.model.row_of(bob.id))
    assert unsaved_answers.asked == ["Ada Lovelace"]
    assert view.detail.record.id == ada.id                                   # still on Ada...
    assert view.detail.form.inputs["job_title"].text() == "Analyst"         # ...with the edit
    assert view.table.currentIndex().row() == view.model.row_of(ada.id)      # and her row selected
    assert services.contacts.get(ada.id).job_title is None


def test_discard_drops_the_edits_and_moves_on(qtbot, main_window, services, unsaved_answers):
    ada, bob = two_contacts(services)
    view = contacts_page(main_window)
    select_row_of(qtbot, view, ada.id)
    view.detail.form.inputs["job_title"].setText("Analyst")
    unsaved_answers.append("discard")
    view.table.selectRow(view.model.row_of(bob.id))
    assert view.detail.record.id == bob.id
    assert services.contacts.get(ada.id).job_title is None


def test_save_in_the_question_saves_then_moves_on(qtbot, main_window, services, unsaved_answers):
    ada, bob = two_contacts(services)
    view = contacts_page(main_window)
    select_row_of(qtbot, view, ada.id)
    view.detail.form.inputs["job_title"].setText("Analyst")
    unsaved_answers.append("save")
    view.table.selectRow(view.model.row_of(bob.id))
    qtbot.waitUntil(lambda: view.detail.record.id == bob.id)
    assert services.contacts.get(ada.id).job_title == "Analyst"


def test_switching_view_with_unsaved_edits_asks(qtbot, main_window, services, unsaved_answers):
    ada, _ = two_contacts(services)
    view = contacts_page(main_window)
    show_and_wait(qtbot, view, ada.id)
    view.detail.form.inputs["city"].setText("London")
    unsaved_answers.append("cancel")
    main_window.show_page("companies")
    assert unsaved_answers.asked == ["Ada Lovelace"]
    assert main_window.current_page() == "contacts"
    assert main_window.stack.currentWidget() is view
    unsaved_answers.append("save")
    main_window.show_page("companies")
    qtbot.waitUntil(lambda: main_window.current_page() == "companies")
    assert services.contacts.get(ada.id).city == "London"


def test_closing_the_window_with_unsaved_edits_asks(qtbot, main_window, services, unsaved_answers):
    view = contacts_page(main_window)
    view.new_record()
    view.detail.form.inputs["last_name"].setText("Hopper")
    unsaved_answers.append("cancel")
    main_window.close()
    assert unsaved_answers.asked == ["the new contact"]
    assert main_window.isVisible()
    unsaved_answers.append("save")
    main_window.close()
    qtbot.waitUntil(lambda: not main_window.isVisible())
    assert [c.display_name for c in services.contacts.list().items] == ["Hopper"]


def test_ctrl_s_saves_and_the_status_bar_says_so(qtbot, main_window, services):
    ada, _ = two_contacts(services)
    view = contacts_page(main_window)
    show_and_wait(qtbot, view, ada.id)
    form = view.detail.form
    form.inputs["city"].setText("London")
    assert form.is_dirty()
    form.inputs["city"].textEdited.emit("London")
    assert form.state_label.text() == "Unsaved changes"
    assert main_window.save_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Save)
    form.inputs["city"].setFocus()
    qtbot.keyClick(form.inputs["city"], Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: services.contacts.get(ada.id).city == "London")
    qtbot.waitUntil(lambda: "Saved" in main_window.statusBar().currentMessage())
    assert "Ada Lovelace" in main_window.statusBar().currentMessage()
    assert form.state_label.text().startswith("Saved")
    assert not form.is_dirty()


@pytest.mark.parametrize("page", ["contacts", "companies", "deals", "leads", "activities"])
def test_save_is_on_screen_without_scrolling_at_1280x800(qtbot, main_window, services, page, tmp_path):
    main_window.resize(1280, 800)
    main_window.show_page(page)
    if page == "deals":
        main_window.deals_tabs.setCurrentWidget(main_window.lists["deals"])
    view = main_window.lists[page]
    view.new_record()
    qtbot.wait(50)
    button = view.detail.form.save_button
    assert button.isVisible()
    top_left = button.mapTo(main_window, button.rect().topLeft())
    bottom_right = button.mapTo(main_window, button.rect().bottomRight())
    assert main_window.rect().contains(top_left) and main_window.rect().contains(bottom_right)
    assert button.visibleRegion().boundingRect().size() == button.size()  # all of it, not scrolled away
    # not inside the scrolling part of the panel: it stays put however far the form is scrolled
    assert not view.detail.form_scroll.isAncestorOf(button)
    main_window.grab().save(str(tmp_path / f"{page}-form-1280x800.png"))


# -- the UI thread never waits for the database ---------------------------------------------------------

def test_a_save_while_another_writer_holds_the_database_keeps_the_window_alive(qtbot, main_window, services,
                                                                                  core):
    ada, _ = two_contacts(services)
    view = contacts_page(main_window)
    show_and_wait(qtbot, view, ada.id)
    form = view.detail.form
    form.inputs["city"].setText("Paris")
    other = sqlite3.connect(str(core.home.db_path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # an import on its worker holds the write lock
    ticks = []
    timer = QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        form.save_button.click()
        started = time.perf_counter()
        qtbot.wait(1500)
        assert form.saving and form.state_label.text() == "Saving…"
    finally:
        other.execute("COMMIT")
        other.close()
    qtbot.waitUntil(lambda: not form.saving, timeout=15000)
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:]) if a >= started]
    assert max(gaps) < 0.25, f"the window froze for {max(gaps):.2f} s"
    assert form.visible_errors() == {}
    assert services.contacts.get(ada.id).city == "Paris"


def test_the_duplicate_check_waits_for_a_pause_and_runs_off_the_ui_thread(qtbot, main_window, services,
                                                                              monkeypatch):
    services.contacts.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    calls = []
    real = services.duplicates.contacts_like

    def spy(**kwargs):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(**kwargs)

    monkeypatch.setattr(services.duplicates, "contacts_like", spy)
    view = contacts_page(main_window)
    view.new_record()
    qtbot.keyClicks(view.detail.form.inputs["email"], "ada@example.com")  # 15 keystrokes
    qtbot.waitUntil(lambda: view.detail.duplicates.isVisible())
    assert len(calls) <= 2, f"{len(calls)} duplicate queries for one word"
    assert calls and not any(calls), "the duplicate check ran on the UI thread"


# -- one dispatcher: events from a worker reach Qt and plugins on the GUI thread -------------------------------

THREAD_PLUGIN = '''
import sys, threading
from crm_desktop.plugin_api import hookimpl

@hookimpl
def crm_event(ctx, event):
    probe = sys.modules["plugin_probe"]
    probe.threads.append((event.name, threading.current_thread() is threading.main_thread()))
    if event.name == "contact.created" and probe.fail:
        raise RuntimeError("plugin bug")
'''


@pytest.fixture
def thread_probe(monkeypatch):
    module = types.ModuleType("plugin_probe")
    module.threads, module.fail = [], False
    monkeypatch.setitem(sys.modules, "plugin_probe", module)
    return module


def write_thread_plugin(home):
    folder = home.plugins_dir / "threads"
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "threads", "version": "1.0.0", "displayName": "Threads", "author": "Tests",
        "description": "Records the thread of each event.", "main": "plugin.py", "permissions": ["contacts:read"]}))
    (folder / "plugin.py").write_text(textwrap.dedent(THREAD_PLUGIN))


@pytest.mark.parametrize("fail", [False, True], ids=["event", "plugin-fails-on-event"])
def test_events_published_on_a_worker_reach_plugins_and_qt_on_the_gui_thread(qtbot, main_window, core, home,
                                                                              thread_probe, qtlog, fail):
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.ui.plugins.adapter import QtPluginAdapter

    write_thread_plugin(home)
    thread_probe.fail = fail
    host = PluginHost(core, home, bundled_dir=None, system_dir=None)
    adapter = QtPluginAdapter(main_window, host, show_failures=False).start()
    try:
        assert host.records["threads"].state == "active"
        worker = threading.Thread(target=lambda: core.services.contacts.create(first_name="Wo", last_name="Rker"))
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: any(name == "contact.created" for name, _ in thread_probe.threads))
        assert all(on_main for _, on_main in thread_probe.threads), thread_probe.threads
        if fail:
            qtbot.waitUntil(lambda: host.records["threads"].state == "failed")
        # the window refreshed from the same events, on its own thread
        qtbot.waitUntil(lambda: main_window.lists["contacts"].model.count_known
                        and main_window.lists["contacts"].model.rowCount() == 1 or
                        main_window.current_page() != "contacts", timeout=3000)
    finally:
        adapter.stop()
        host.stop()
    warnings = [m.message for m in qtlog.records if "different thread" in m.message]
    assert warnings == []


# -- Export ---------------------------------------------------------------------------------------------

def test_export_asks_before_replacing_an_existing_file(qtbot, main_window, services, tmp_path, monkeypatch):
    from crm_desktop.ui import export_dialog

    services.contacts.create(first_name="Ada", last_name="Lovelace")
    target = tmp_path / "contacts.csv"
    target.write_text("my precious spreadsheet\n")
    options = []

    def save_dialog(parent, caption, directory, filters, selectedFilter="", options=None):
        save_dialog.options = options
        return str(target), "CSV (*.csv)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    asked = []
    monkeypatch.setattr(export_dialog, "confirm_replace", lambda parent, path: asked.append(path) or False)
    main_window.export_file("contact")
    assert asked == [target]
    assert target.read_text() == "my precious spreadsheet\n"  # Cancel: untouched
    # Qt's own question is off: we ask once, about the file really written
    assert save_dialog.options & QFileDialog.Option.DontConfirmOverwrite

    monkeypatch.setattr(export_dialog, "confirm_replace", lambda parent, path: True)
    main_window.export_file("contact")
    qtbot.waitUntil(lambda: "Exported 1 contacts" in main_window.statusBar().currentMessage())
    assert "Lovelace" in target.read_text(encoding="utf-8-sig")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".contacts")] == []  # no temp file left
    assert "Exported 1 contacts" in main_window.statusBar().currentMessage()


def test_export_adds_the_suffix_before_asking_about_that_file(qtbot, main_window, services, tmp_path,
                                                              monkeypatch):
    from crm_desktop.ui import export_dialog

    (tmp_path / "cards.vcf").write_text("BEGIN:VCARD\nEND:VCARD\n")
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "cards"), "vCard (*.vcf)"))
    asked = []
    monkeypatch.setattr(export_dialog, "confirm_replace", lambda parent, path: asked.append(path) or False)
    assert export_dialog.choose_export_path(main_window, "contact") is None
    assert asked == [tmp_path / "cards.vcf"]


def test_a_failed_export_leaves_the_old_file(qtbot, main_window, services, tmp_path, monkeypatch):
    from crm_desktop.services import exporter
    from crm_desktop.ui import export_dialog

    services.contacts.create(first_name="Ada", last_name="Lovelace")
    target = tmp_path / "contacts.csv"
    target.write_text("old\n")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV (*.csv)"))
    monkeypatch.setattr(export_dialog, "confirm_replace", lambda parent, path: True)

    def broken(stream, fields, rows):
        stream.write("half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(exporter, "write_csv", broken)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *a: warnings.append(text))
    main_window.export_file("contact")
    qtbot.waitUntil(lambda: bool(warnings))
    assert len(warnings) == 1 and "disk full" in warnings[0]  # one sentence naming what went wrong
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.csv", "ui-test.ini"] or \
        [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- plugin migrations started from the admin panel -------------------------------------------------------

NOTES_MIGRATION = '''
import sqlalchemy as sa
from alembic import op
revision = "notes_0001"
down_revision = None
branch_labels = None
depends_on = None
def upgrade():
    op.create_table("notes_items", sa.Column("id", sa.Integer, primary_key=True))
def downgrade():
    op.drop_table("notes_items")
'''


def _write_notes(folder, version="1.0.0"):
    (folder / "migrations" / "versions").mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "notes", "version": version, "displayName": "Notes", "author": "Tests", "description": "Notes.",
        "main": "plugin.py", "permissions": ["contacts:read"], "migrations": "migrations"}))
    (folder / "plugin.py").write_text(
        "from crm_desktop.plugin_api import hookimpl\n"
        "from crm_desktop.plugin_api.contributions import MenuAction\n"
        "@hookimpl\n"
        "def crm_menu_actions(ctx):\n"
        "    return [MenuAction(id='notes', title='Notes', callback=lambda ctx: None, menu='Tools')]\n")
    (folder / "migrations" / "env.py").write_text(
        "from alembic import context\nfrom crm_desktop.plugin_api.migrations import run_migrations\n"
        "run_migrations(context)\n")
    (folder / "migrations" / "versions" / "0001.py").write_text(NOTES_MIGRATION)
    return folder


def _spy_migrations(monkeypatch):
    """(on the GUI thread?, revisions ran?) for each plugin migration."""
    from crm_desktop.storage import migrate

    ran = []
    real = migrate.upgrade_in_one_transaction

    def spy(*args, **kwargs):
        changed = real(*args, **kwargs)
        ran.append((threading.current_thread() is threading.main_thread(), changed))
        return changed

    monkeypatch.setattr(migrate, "upgrade_in_one_transaction", spy)
    return ran


def test_enabling_a_plugin_migrates_its_tables_off_the_ui_thread(gui_db_guard, qtbot, core, home, monkeypatch):
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.plugin_host.lifecycle import PluginState
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.plugin_admin import PluginAdminPanel

    _write_notes(home.plugins_dir / "notes")
    host = PluginHost(core, home, bundled_dir=None, system_dir=None)
    host.start()
    host.disable("notes")
    with sqlite3.connect(home.db_path) as conn:  # start from a plugin whose tables were never made
        conn.execute("DROP TABLE notes_items")
        conn.execute("DROP TABLE alembic_version_notes")
    ran = _spy_migrations(monkeypatch)
    executor = DataExecutor()
    panel = PluginAdminPanel(host, executor=executor)
    qtbot.addWidget(panel)
    try:
        panel.select("notes")
        # the migration (and the read of the plugin's version before and after it) runs on the writer
        with gui_db_guard.watching():
            panel.enable_selected()
            qtbot.waitUntil(lambda: host.records["notes"].state is PluginState.ACTIVE, timeout=10000)
            qtbot.waitUntil(lambda: executor.idle())
        assert ran == [(False, True)], "the migration ran on the UI thread"
        assert "notes enabled." in panel.message.text()
        with sqlite3.connect(home.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM notes_items").fetchone() == (0,)
    finally:
        executor.stop()
        host.stop()


def _install_panel(qtbot, core, home):
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.plugin_admin import PluginAdminPanel

    host = PluginHost(core, home, bundled_dir=None, system_dir=None).start()
    executor = DataExecutor()
    panel = PluginAdminPanel(host, executor=executor)
    qtbot.addWidget(panel)
    return host, executor, panel


def _leftovers(home):
    return sorted(p.name for p in home.plugins_dir.iterdir() if p.name.startswith("."))


def _notes_tables(home):
    with sqlite3.connect(home.db_path) as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%notes%'"))


def test_installing_a_folder_from_the_panel_copies_and_migrates_off_the_gui_thread(gui_db_guard, qtbot, core,
                                                                                   home, tmp_path, monkeypatch):
    from crm_desktop.plugin_host.lifecycle import PluginState

    source = _write_notes(tmp_path / "downloads" / "notes")
    host, executor, panel = _install_panel(qtbot, core, home)
    ran = _spy_migrations(monkeypatch)
    asked_on = []
    monkeypatch.setattr(panel, "choose_folder", lambda: str(source))
    monkeypatch.setattr(panel, "approve_folder",
                        lambda plan: asked_on.append(threading.current_thread() is threading.main_thread()) or True)
    try:
        with gui_db_guard.watching():
            panel.install_folder_button.click()
            # the question was asked here; the copy and the migration now run on the writer
            assert asked_on == [True]
            assert panel.busy and not panel.install_folder_button.isEnabled()
            assert "updating its tables" in panel.message.text()
            qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
            qtbot.waitUntil(lambda: executor.idle())
        assert panel.message.text() == "Installed notes.", panel.message.text()
        assert host.records["notes"].state is PluginState.ACTIVE
        assert [a.title for a in host.menu_actions("notes")] == ["Notes"]  # its code was loaded
        assert ran == [(False, True)], "the migration ran on the UI thread"
        assert _notes_tables(home) == ["alembic_version_notes", "notes_items"]
        assert (home.plugins_dir / "notes" / "plugin.json").exists() and _leftovers(home) == []
        assert panel.install_folder_button.isEnabled()
    finally:
        executor.stop()
        host.stop()


def test_installing_a_bundle_from_the_panel_migrates_off_the_gui_thread(gui_db_guard, qtbot, core, home,
                                                                        tmp_path, monkeypatch):
    from crm_desktop.plugin_host.bundle import pack_plugin
    from crm_desktop.plugin_host.lifecycle import PluginState

    bundle = tmp_path / "notes.crmplugin"
    pack_plugin(_write_notes(tmp_path / "src" / "notes"), bundle)
    host, executor, panel = _install_panel(qtbot, core, home)
    ran = _spy_migrations(monkeypatch)
    asked_on = []
    monkeypatch.setattr(panel, "choose_bundle", lambda: str(bundle))
    monkeypatch.setattr(panel, "approve_bundle",
                        lambda plan: asked_on.append(threading.current_thread() is threading.main_thread()) or True)
    try:
        with gui_db_guard.watching():
            panel.install_bundle_button.click()
            assert asked_on == [True]
            assert panel.busy and "updating its tables" in panel.message.text()
            qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
            qtbot.waitUntil(lambda: executor.idle())
        assert panel.message.text() == "Installed notes.crmplugin.", panel.message.text()
        assert host.records["notes"].state is PluginState.ACTIVE
        assert [a.title for a in host.menu_actions("notes")] == ["Notes"]
        assert ran == [(False, True)], "the migration ran on the UI thread"
        assert _notes_tables(home) == ["alembic_version_notes", "notes_items"]
        assert (home.plugins_dir / "notes" / "plugin.json").exists() and _leftovers(home) == []
    finally:
        executor.stop()
        host.stop()


def test_a_bundle_whose_migration_fails_is_rolled_back_and_says_why(qtbot, core, home, tmp_path, monkeypatch):
    from crm_desktop.plugin_host.bundle import pack_plugin

    source = _write_notes(tmp_path / "src" / "notes")
    (source / "migrations" / "versions" / "0001.py").write_text(
        NOTES_MIGRATION.replace('op.create_table("notes_items"', 'op.create_table("stray_items"'))
    bundle = tmp_path / "notes.crmplugin"
    pack_plugin(source, bundle)
    host, executor, panel = _install_panel(qtbot, core, home)
    monkeypatch.setattr(panel, "choose_bundle", lambda: str(bundle))
    monkeypatch.setattr(panel, "approve_bundle", lambda plan: True)
    try:
        panel.install_bundle_button.click()
        qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
        text = panel.message.text()
        assert text.startswith("Installing notes.crmplugin failed:") and "rolled back" in text, text
        assert "stray_items" in text and "not prefixed" in text
        assert panel.message.property("error") is True
        assert "notes" not in host.records and not (home.plugins_dir / "notes").exists()
        assert _leftovers(home) == [] and _notes_tables(home) == []
    finally:
        executor.stop()
        host.stop()


def _notes_plugin(home, core):
    from crm_desktop.plugin_host.host import PluginHost

    folder = _write_notes(home.plugins_dir / "notes")
    host = PluginHost(core, home, bundled_dir=None, system_dir=None)
    host.start()
    return host, folder


def test_reloading_a_plugin_migrates_its_new_revision_off_the_ui_thread_and_shows_busy(gui_db_guard, qtbot, core,
                                                                                      home, monkeypatch):
    from crm_desktop.plugin_host.lifecycle import PluginState
    from crm_desktop.storage import migrate
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.plugin_admin import PluginAdminPanel

    host, folder = _notes_plugin(home, core)
    # the plugin's new code brings a second revision
    (folder / "migrations" / "versions" / "0002.py").write_text(NOTES_MIGRATION.replace(
        'revision = "notes_0001"\ndown_revision = None', 'revision = "notes_0002"\ndown_revision = "notes_0001"')
        .replace('op.create_table("notes_items", sa.Column("id", sa.Integer, primary_key=True))',
                 'op.add_column("notes_items", sa.Column("title", sa.String(100)))')
        .replace('op.drop_table("notes_items")', 'op.drop_column("notes_items", "title")'))
    ran = []
    real = migrate.upgrade_in_one_transaction

    def spy(*args, **kwargs):
        changed = real(*args, **kwargs)
        ran.append((threading.current_thread() is threading.main_thread(), changed))
        return changed

    monkeypatch.setattr(migrate, "upgrade_in_one_transaction", spy)
    executor = DataExecutor()
    panel = PluginAdminPanel(host, executor=executor)
    qtbot.addWidget(panel)
    try:
        panel.select("notes")
        with gui_db_guard.watching():  # nor is the plugin's version read again on the GUI thread after it
            panel.reload_selected()
            assert panel.busy and not panel.reload_button.isEnabled() and "updating its tables" in panel.message.text()
            qtbot.waitUntil(lambda: not panel.busy and "reloaded" in panel.message.text(), timeout=10000)
            qtbot.waitUntil(lambda: executor.idle())
        assert host.records["notes"].state is PluginState.ACTIVE
        assert ran == [(False, True)], "the migration ran, or its version was read again, on the UI thread"
        with sqlite3.connect(home.db_path) as conn:
            assert "title" in [r[1] for r in conn.execute("PRAGMA table_info(notes_items)")]
        assert panel.reload_button.isEnabled()
    finally:
        executor.stop()
        host.stop()


def test_uninstalling_with_its_data_drops_the_tables_off_the_ui_thread(gui_db_guard, qtbot, core, home,
                                                                       monkeypatch):
    from crm_desktop.storage import migrate
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.plugin_admin import PluginAdminPanel

    host, folder = _notes_plugin(home, core)
    dropped_on = []
    real = migrate.backup_database

    def spy(*args, **kwargs):
        dropped_on.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(migrate, "backup_database", spy)
    executor = DataExecutor()
    panel = PluginAdminPanel(host, executor=executor)
    qtbot.addWidget(panel)
    monkeypatch.setattr(panel, "ask_uninstall", lambda name: "drop")
    try:
        panel.select("notes")
        with gui_db_guard.watching():
            panel.uninstall_selected()
            assert "notes" not in host.records and not folder.exists()
            qtbot.waitUntil(lambda: "data deleted" in panel.message.text(), timeout=10000)
        assert dropped_on == [False], "dropping the plugin's tables (and the backup) ran on the UI thread"
        with sqlite3.connect(home.db_path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "notes_items" not in tables and "alembic_version_notes" not in tables
    finally:
        executor.stop()
        host.stop()
