"""The GUI thread does no database work: opening a record, typing in a lookup, logging an activity,
exporting and reloading the sync view all read and write on the executor's threads.

Each test runs the user's action inside ``gui_db_guard.watching()`` (tests/qt/conftest.py), which
fails the test when SQLite runs a statement on the main thread, naming the first one and where it
came from; then it checks what the user sees once the answer came back.
"""

from __future__ import annotations

import json
import threading

import pytest

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time
from fixtures.memo_pad import MEMO_MODELS_SOURCE, memo_migration


def test_the_guard_catches_a_query_on_the_gui_thread(gui_db_guard, services):
    import pytest

    with pytest.raises(pytest.fail.Exception, match=r"used on the GUI thread.*services/entity.py:\d+ count"):
        with gui_db_guard.watching():
            services.contacts.count()


def test_opening_a_record_reads_it_and_its_related_lists_off_the_gui_thread(gui_db_guard, qtbot, main_window,
                                                                             services):
    acme = services.companies.create(name="Acme GmbH", city="Berlin")
    services.contacts.create(first_name="Wile", last_name="Coyote", company_id=acme.id, job_title="Buyer")
    services.deals.create(title="Rocket skates", company_id=acme.id, amount="1200")
    main_window.show_page("companies")
    view = main_window.lists["companies"]
    qtbot.waitUntil(lambda: main_window.executor.idle())
    detail = view.detail
    with gui_db_guard.watching():
        main_window.open_record("company", acme.id)
        qtbot.waitUntil(lambda: detail.related_texts("contacts") != [], timeout=5000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert detail.title.text() == "Acme GmbH"
    assert [t.split(" · ")[0] for t in detail.related_texts("contacts")] == ["Wile Coyote"]
    assert "Rocket skates" in detail.related_texts("deals")[0]
    assert detail.related.tabText(0) == "Contacts (1)"
    # a company without deals says so instead of an empty box
    assert detail.related.tabText(1) == "Deals (1)"


def test_a_deal_form_shows_its_stage_and_contact_name_read_off_the_gui_thread(gui_db_guard, qtbot, main_window,
                                                                               services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    pipeline = services.pipelines.default()
    stage = services.pipelines.stages(pipeline.id)[1]
    deal = services.deals.create(title="Engines", contact_id=contact.id, stage_id=stage.id)
    main_window.show_page("deals")
    qtbot.waitUntil(lambda: main_window.executor.idle())
    form = main_window.lists["deals"].detail.form
    with gui_db_guard.watching():
        main_window.open_record("deal", deal.id)
        qtbot.waitUntil(lambda: form.inputs["contact_id"].text() == "Ada Lovelace", timeout=5000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert form.inputs["stage_id"].currentData() == (pipeline.id, stage.id)
    assert not form.is_dirty()  # names and stages arriving later are not edits


def test_typing_in_a_lookup_searches_off_the_gui_thread(gui_db_guard, qtbot, main_window, services):
    services.companies.create(name="Acme GmbH")
    services.companies.create(name="Acme Rockets")
    services.companies.create(name="Globex")
    main_window.show_page("contacts")
    view = main_window.lists["contacts"]
    view.new_record()
    qtbot.waitUntil(lambda: main_window.executor.idle())
    lookup = view.detail.form.inputs["company_id"]
    lookup.setFocus()
    with gui_db_guard.watching():
        qtbot.keyClicks(lookup, "Acme")
        qtbot.waitUntil(lambda: lookup.search_state == "found", timeout=5000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert sorted(lookup.suggestions()) == ["Acme GmbH", "Acme Rockets"]
    with gui_db_guard.watching():
        lookup.clear()
        qtbot.keyClicks(lookup, "Zzz")
        qtbot.waitUntil(lambda: lookup.search_state == "none", timeout=5000)
    assert "Nothing matches" in lookup.toolTip()


def test_logging_an_activity_writes_off_the_gui_thread(gui_db_guard, qtbot, main_window, services):
    from crm_desktop.ui.activity_dialog import ActivityDialog

    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    main_window.open_record("contact", contact.id)
    detail = main_window.lists["contacts"].detail
    qtbot.waitUntil(lambda: detail.record is not None and detail.record.id == contact.id)
    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        dialog = ActivityDialog(services, ActivityKind.CALL, {"contact_id": contact.id},
                                executor=main_window.executor, parent=detail)
        dialog.subject.setText("Talked about engines")
        dialog.accept()
        assert dialog.ok_button.text() == "Saving…" and not dialog.ok_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.result() == dialog.DialogCode.Accepted, timeout=5000)
        detail._after_change()
        qtbot.waitUntil(lambda: any("Talked about engines" in t for t in detail.related_texts("activities")))
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert dialog.activity.subject == "Talked about engines"
    # an invalid one stays open with the reason, written by the writer too
    with gui_db_guard.watching():
        empty = ActivityDialog(services, ActivityKind.NOTE, {"contact_id": contact.id},
                               executor=main_window.executor, parent=detail)
        empty.accept()
        qtbot.waitUntil(lambda: not empty.error.isHidden(), timeout=5000)
    assert "Subject" in empty.error.text() and empty.result() != empty.DialogCode.Accepted
    assert empty.ok_button.isEnabled()


def test_export_runs_off_the_gui_thread_with_progress_and_cancel(gui_db_guard, qtbot, main_window, services,
                                                                 tmp_path, monkeypatch):
    from crm_desktop.ui.export_dialog import ExportProgressDialog

    for i in range(30):
        services.contacts.create(first_name=f"P{i}", last_name="Export", email=f"p{i}@example.com")
    target = tmp_path / "contacts.csv"
    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        dialog = ExportProgressDialog(services, "contact", target, executor=main_window.executor,
                                      parent=main_window)
        dialog.start()
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=10000)
    assert dialog.outcome == ("done", 30)
    assert dialog.maximum() == 30 and dialog.value() == 30
    assert len(target.read_text(encoding="utf-8").splitlines()) == 31
    assert dialog.isHidden()
    # cancelled: the old file stays as it was
    from crm_desktop.services import exporter

    target.write_text("old\n", encoding="utf-8")
    clicked = threading.Event()
    real_write_csv = exporter.write_csv

    def write_after_the_click(stream, fields, rows):
        clicked.wait(5)  # the rows are read (and Cancel checked) only once the user clicked
        return real_write_csv(stream, fields, rows)

    monkeypatch.setattr(exporter, "write_csv", write_after_the_click)
    with gui_db_guard.watching():
        dialog = ExportProgressDialog(services, "contact", target, executor=main_window.executor,
                                      parent=main_window)
        dialog.start()
        dialog.cancel()
        clicked.set()
        qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=10000)
    assert dialog.outcome == ("cancelled", None)
    assert target.read_text(encoding="utf-8") == "old\n"


def test_export_from_the_menu_says_how_many_and_a_failure_in_one_sentence(gui_db_guard, qtbot, main_window,
                                                                          services, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from crm_desktop.ui import export_dialog

    services.companies.create(name="Acme GmbH")
    target = tmp_path / "companies.csv"
    monkeypatch.setattr(export_dialog, "choose_export_path", lambda parent, entity: target)
    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        main_window.export_file("company")
        qtbot.waitUntil(lambda: "Exported 1 companies" in main_window.statusBar().currentMessage(), timeout=10000)
    assert "Acme GmbH" in target.read_text(encoding="utf-8")
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: warnings.append((title, text)))
    monkeypatch.setattr(export_dialog, "choose_export_path",
                        lambda parent, entity: tmp_path / "missing-folder" / "c.csv")
    with gui_db_guard.watching():
        main_window.export_file("company")
        qtbot.waitUntil(lambda: bool(warnings), timeout=10000)
    [(title, text)] = warnings
    assert title == "Export" and "missing-folder" in text and "\n" not in text


def _seed_sync(services):
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace", city="London")
    pipeline = services.pipelines.default()
    services.pipelines.update(pipeline.id, name="My pipeline")
    with services.db.transaction(replicate=False) as scope:
        conn = scope.tx.dbapi_connection
        conn.execute("DELETE FROM sync_outbox WHERE entity = 'contact'")
        conn.execute("UPDATE sync_outbox SET status='rejected', reason='permission', "
                     "message='only managers and admins change pipelines'")
        fields = [{"field": "city", "base": "Paris", "mine": "Berlin", "theirs": "London"}]
        conn.execute("INSERT INTO sync_conflicts (entity, record_id, kind, fields, theirs, version, mutation_id, "
                     "created_at) VALUES ('contact', ?, 'fields', ?, NULL, 3, 7, ?)",
                     (contact.id, json.dumps(fields), db_time(utcnow())))
    return contact


def test_the_sync_page_loads_and_resolves_off_the_gui_thread(gui_db_guard, qtbot, core):
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.sync_view import SyncPage

    contact = _seed_sync(core.services)
    executor = DataExecutor()
    try:
        with gui_db_guard.watching():
            page = SyncPage(core.services, executor=executor)
            qtbot.addWidget(page)
            page.show()
            assert page.conflicts.stack.currentWidget() is page.conflicts.loading
            qtbot.waitUntil(lambda: page.tabText(0) == "Conflicts (1)" and page.tabText(1) == "Sync problems (1)",
                            timeout=5000)
            assert page.conflicts.tree.topLevelItem(0).text(0) == "Contact: Ada Lovelace"
            page.reload()
            qtbot.waitUntil(lambda: executor.idle())
            page.conflicts.keep.click()
            qtbot.waitUntil(lambda: page.tabText(0) == "Conflicts", timeout=5000)
            qtbot.waitUntil(lambda: executor.idle())
        assert core.services.contacts.get(contact.id).city == "Berlin"
        assert page.conflicts.stack.currentWidget() is page.conflicts.empty
    finally:
        executor.stop()


def test_a_sync_page_that_cannot_read_says_why(qtbot, core):
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.sync_view import SyncPage

    executor = DataExecutor()
    try:
        page = SyncPage(core.services, executor=executor)
        qtbot.addWidget(page)
        qtbot.waitUntil(lambda: executor.idle())
        core.services.db.dispose()
        core.home.db_path.unlink()
        core.home.db_path.mkdir()  # a folder where the database was: every read fails
        page.reload()
        qtbot.waitUntil(lambda: page.problems.stack.currentWidget() is page.problems.error, timeout=5000)
        assert page.problems.error.text().startswith("Could not read the sync problems:")
        assert "\n" not in page.problems.error.text()
    finally:
        executor.stop()
        core.home.db_path.rmdir()


def test_the_pipeline_board_reads_its_pipelines_off_the_gui_thread(gui_db_guard, qtbot, main_window, services):
    from crm_desktop.ui.kanban import PipelineBoard

    pipeline = services.pipelines.default()
    first = services.pipelines.stages(pipeline.id)[0]
    services.deals.create(title="Rocket skates", amount="1200", stage_id=first.id)
    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        board = PipelineBoard(services, executor=main_window.executor)
        qtbot.addWidget(board)
        qtbot.waitUntil(lambda: first.id in board.columns, timeout=5000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert board.pipeline.currentText() == pipeline.name and board.pipeline.count() >= 1
    assert board.columns[first.id].cards.item(0).text() == "Rocket skates"


# -- a plugin with synced models: its tables are published to sync on the writer ------------------------------

MEMO_MODELS = MEMO_MODELS_SOURCE
MEMO_MAIN = '''
import sys
from crm_desktop.plugin_api import hookimpl
from crm_desktop.plugin_api.contributions import MenuAction
from .models import Memo

@hookimpl
def crm_activate(ctx):
    sys.modules["memo_probe"].seen.append("activate")

@hookimpl
def crm_event(ctx, event):
    sys.modules["memo_probe"].seen.append("event")

@hookimpl
def crm_menu_actions(ctx):
    return [MenuAction(id="memos", title="Memos", callback=lambda ctx: None, menu="Tools")]
'''
MEMO_MIGRATION = memo_migration()


def _write_memo_pad(folder, *, with_table=True):
    """A user plugin with one synced model (``memo_pad_memos``); ``with_table=False``: its migration
    forgets to create that table, so publishing it to sync fails."""
    (folder / "migrations" / "versions").mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "memo-pad", "version": "1.0.0", "displayName": "Memo pad", "author": "Tests",
        "description": "Team memos.", "main": "memo_pad.py", "permissions": [], "migrations": "migrations"}))
    (folder / "models.py").write_text(MEMO_MODELS)
    (folder / "memo_pad.py").write_text(MEMO_MAIN)
    (folder / "migrations" / "env.py").write_text(
        "from alembic import context\nfrom crm_desktop.plugin_api.migrations import run_migrations\n"
        "run_migrations(context)\n")
    migration = MEMO_MIGRATION if with_table else MEMO_MIGRATION.replace(
        'op.create_table(\n        "memo_pad_memos"', 'op.create_table(\n        "memo_pad_other"')
    (folder / "migrations" / "versions" / "0001.py").write_text(migration)
    return folder


def _synced_tables(home):
    import sqlite3

    with sqlite3.connect(home.db_path) as conn:
        return [r[0] for r in conn.execute("SELECT table_name FROM sync_plugin_tables WHERE plugin = 'memo-pad'")]


@pytest.fixture
def memo_app(qtbot, main_window, core, home, monkeypatch):
    """``start(with_table=True, enabled=False)`` writes the ``memo-pad`` plugin into the home and starts
    the app's plugin host over ``main_window`` as the app does (``app.start_plugins``: the window's
    executor is the host's writer, the admin panel is the Plugins page), with only the home's user
    plugins. Returns ``(host, panel, probe)``: ``probe.seen`` lists in order "publish" (with the thread
    the synced tables were published on) and the plugin's hooks called; the publishing waits for
    ``probe.go_on``."""
    import sys
    import types

    from crm_desktop import app
    from crm_desktop.plugin_host import discovery
    from crm_desktop.plugin_host.lifecycle import StateFile
    from crm_desktop.sync import applier
    from crm_desktop.ui.plugin_admin import PluginAdminPanel

    monkeypatch.setattr(discovery, "bundled_plugins_dir", lambda: None)
    monkeypatch.setattr(discovery, "system_plugins_dir", lambda policy: None)
    probe = types.ModuleType("memo_probe")
    probe.seen = []
    probe.go_on = threading.Event()  # a test clears it to hold the publishing on the writer
    probe.go_on.set()
    monkeypatch.setitem(sys.modules, "memo_probe", probe)
    real_publish = applier.publish_plugin_tables

    def publish(db, tables):
        probe.seen.append(("publish", "GUI thread" if threading.current_thread() is threading.main_thread()
                           else "writer"))
        assert probe.go_on.wait(10)
        return real_publish(db, tables)

    monkeypatch.setattr(applier, "publish_plugin_tables", publish)
    hosts = []

    def start(*, with_table=True, enabled=False, installed=True):
        if installed:
            _write_memo_pad(home.plugins_dir / "memo-pad", with_table=with_table)
        if installed and not enabled:
            StateFile(home.root).set_disabled("memo-pad")
        host = app.start_plugins(main_window, core)
        assert host is not None
        hosts.append(host)
        return host, main_window.findChild(PluginAdminPanel), probe

    yield start
    for host in hosts:
        host.stop()
        main_window._plugin_adapter.stop()


def test_enabling_a_plugin_with_synced_models_publishes_its_tables_off_the_gui_thread(gui_db_guard, qtbot,
                                                                                       main_window, home, memo_app):
    from crm_desktop.plugin_host.lifecycle import PluginState

    host, panel, probe = memo_app()
    seen = probe.seen
    assert host.records["memo-pad"].state is PluginState.DISABLED
    panel.select("memo-pad")
    probe.go_on.clear()
    with gui_db_guard.watching():
        panel.enable_selected()
        # migrated, imported, then published on the writer: meanwhile the plugin has no ctx, no hook ran,
        # the window repaints and the panel says what it waits for
        qtbot.waitUntil(lambda: seen == [("publish", "writer")], timeout=10000)
        qtbot.wait(50)
        assert host.loading and host.context("memo-pad") is None and seen == [("publish", "writer")]
        assert panel.busy and panel.message.text() == "Enabling memo-pad: publishing its synced tables…"
        probe.go_on.set()
        qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert host.records["memo-pad"].state is PluginState.ACTIVE, host.records["memo-pad"].error
    assert panel.message.text() == "memo-pad enabled."
    assert seen[:2] == [("publish", "writer"), "activate"], seen
    assert _synced_tables(home) == ["memo_pad_memos"]
    assert [a.title for a in host.menu_actions("memo-pad")] == ["Memos"]
    assert host.context("memo-pad") is not None


def test_a_plugin_whose_synced_table_is_missing_fails_with_the_reason_and_the_app_carries_on(
        gui_db_guard, qtbot, main_window, home, services, memo_app):
    from crm_desktop.plugin_host.lifecycle import PluginState

    host, panel, probe = memo_app(with_table=False)
    seen = probe.seen
    panel.select("memo-pad")
    with gui_db_guard.watching():
        panel.enable_selected()
        qtbot.waitUntil(lambda: host.records["memo-pad"].state is PluginState.FAILED, timeout=10000)
        qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    record = host.records["memo-pad"]
    assert record.error.startswith(
        "publishing its synced tables raised crm_desktop.plugin_api.errors.PluginError: synced model table(s) "
        "memo_pad_memos do not exist: add them to the plugin's migrations\n\nTraceback"), record.error
    assert seen == [], "the plugin's code ran, or its tables were published, although they do not exist"
    assert panel.message.text().startswith("memo-pad is failed: "), panel.message.text()
    # nothing of it stays loaded
    assert host.context("memo-pad") is None and host.menu_actions("memo-pad") == []
    assert not host.loading and _synced_tables(home) == []
    # the app is usable: the panel's buttons are back and a record still saves on the writer
    assert panel.enable_button.isEnabled() and panel.install_folder_button.isEnabled()
    _a_record_still_opens(qtbot, main_window, services, gui_db_guard)


def _plugin_tables(home):
    import sqlite3

    with sqlite3.connect(home.db_path) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                                 "AND (name LIKE 'memo_pad%' OR name LIKE 'alembic_version_%')"))


def test_at_start_up_a_plugin_with_migrations_and_synced_models_loads_without_sql_on_the_gui_thread(
        gui_db_guard, qtbot, main_window, home, memo_app):
    from crm_desktop.plugin_host.lifecycle import PluginState

    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        host, panel, probe = memo_app(enabled=True)
        seen = probe.seen
        # its tables are migrated, then its synced tables published, on the writer; until then no hook ran
        assert host.loading and host.context("memo-pad") is None and "activate" not in seen
        qtbot.waitUntil(lambda: not host.loading, timeout=10000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert host.records["memo-pad"].state is PluginState.ACTIVE, host.records["memo-pad"].error
    assert seen[:2] == [("publish", "writer"), "activate"], seen
    assert _plugin_tables(home) == ["alembic_version_memo_pad", "memo_pad_memos"]
    assert _synced_tables(home) == ["memo_pad_memos"]
    assert [a.title for a in host.menu_actions("memo-pad")] == ["Memos"]


def test_at_start_up_a_plugin_whose_migration_fails_is_marked_and_the_app_carries_on(
        gui_db_guard, qtbot, main_window, home, services, memo_app):
    from crm_desktop.plugin_host.lifecycle import PluginState

    folder = _write_memo_pad(home.plugins_dir / "memo-pad")
    migration = folder / "migrations" / "versions" / "0001.py"
    migration.write_text(migration.read_text().replace(
        'def downgrade():', '    raise RuntimeError("the memo table cannot be made")\ndef downgrade():'))
    qtbot.waitUntil(lambda: main_window.executor.idle())
    with gui_db_guard.watching():
        host, panel, probe = memo_app(enabled=True, installed=False)
        qtbot.waitUntil(lambda: not host.loading, timeout=10000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    record = host.records["memo-pad"]
    assert record.state is PluginState.ERROR
    assert record.error == ("migrating its tables failed: migrating plugin-memo-pad to memo_0001 failed and was "
                            "rolled back: the memo table cannot be made"), record.error
    # nothing of it was imported or stayed in the database
    assert probe.seen == [] and host.context("memo-pad") is None and host.menu_actions("memo-pad") == []
    assert _plugin_tables(home) == [] and _synced_tables(home) == []
    # the app is usable: the panel shows why, and a record still opens
    panel.select("memo-pad")
    assert panel.enable_button.isEnabled() and panel.install_folder_button.isEnabled()
    _a_record_still_opens(qtbot, main_window, services, gui_db_guard)


@pytest.mark.parametrize("with_table", [True, False], ids=["installed", "rolled-back"])
def test_installing_a_bundle_with_synced_models_publishes_off_the_gui_thread_and_checks_the_outcome_after(
        gui_db_guard, qtbot, main_window, home, tmp_path, monkeypatch, memo_app, with_table):
    from crm_desktop.plugin_host.bundle import pack_plugin
    from crm_desktop.plugin_host.lifecycle import PluginState

    bundle = tmp_path / "memo-pad.crmplugin"
    pack_plugin(_write_memo_pad(tmp_path / "src" / "memo-pad", with_table=with_table), bundle)
    host, panel, probe = memo_app(installed=False)
    monkeypatch.setattr(panel, "choose_bundle", lambda: str(bundle))
    monkeypatch.setattr(panel, "approve_bundle", lambda plan: True)
    with gui_db_guard.watching():
        panel.install_bundle_button.click()
        qtbot.waitUntil(lambda: not panel.busy and not host.loading, timeout=10000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    if with_table:
        assert panel.message.text() == "Installed memo-pad.crmplugin.", panel.message.text()
        assert host.records["memo-pad"].state is PluginState.ACTIVE
        assert probe.seen[:2] == [("publish", "writer"), "activate"]
        assert _synced_tables(home) == ["memo_pad_memos"]
    else:  # anything but an active plugin once its load is over rolls the install back
        text = panel.message.text()
        assert text.startswith("Installing memo-pad.crmplugin failed:") and "rolled back" in text, text
        assert "memo-pad installed but is failed" in text and "do not exist" in text, text
        assert not (home.plugins_dir / "memo-pad").exists() and probe.seen == []


def _a_record_still_opens(qtbot, main_window, services, gui_db_guard):
    """The app is usable after a plugin failed to load: a contact opens, read on the executor."""
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace")
    with gui_db_guard.watching():
        main_window.open_record("contact", contact.id)
        detail = main_window.lists["contacts"].detail
        qtbot.waitUntil(lambda: detail.record is not None and detail.record.id == contact.id, timeout=5000)
        qtbot.waitUntil(lambda: main_window.executor.idle())
    assert detail.title.text() == "Ada Lovelace"
