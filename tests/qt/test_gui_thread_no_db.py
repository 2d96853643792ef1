"""The GUI thread does no database work: opening a record, typing in a lookup, logging an activity,
exporting and reloading the sync view all read and write on the executor's threads.

Each test runs the user's action inside ``gui_db_guard.watching()`` (tests/qt/conftest.py), which
fails the test when SQLite runs a statement on the main thread, naming the first one and where it
came from; then it checks what the user sees once the answer came back.
"""

from __future__ import annotations

import json
import threading

from PySide6.QtCore import Qt

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time


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
