"""The Sync page (Conflicts, Sync problems) and the status bar indicator, offscreen."""

from __future__ import annotations

import json
import os
from pathlib import Path

from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time
from crm_desktop.sync.worker import SyncStatus

SHOTS = Path(os.environ.get("CRM_SYNC_SHOTS", "")) if os.environ.get("CRM_SYNC_SHOTS") else None


def _seed(services):
    """A field conflict on a contact and a rejected pipeline edit, as a sync would leave them."""
    contact = services.contacts.create(first_name="Ada", last_name="Lovelace", city="London",
                                       job_title="Analyst")
    pipeline = services.pipelines.default()
    services.pipelines.update(pipeline.id, name="My pipeline")
    with services.db.transaction(replicate=False) as scope:
        conn = scope.tx.dbapi_connection
        conn.execute("DELETE FROM sync_outbox WHERE entity = 'contact'")
        conn.execute("UPDATE sync_outbox SET status='rejected', reason='permission', "
                     "message='only managers and admins change pipelines'")
        fields = [{"field": "city", "base": "Paris", "mine": "Berlin", "theirs": "London"},
                  {"field": "job_title", "base": None, "mine": "Countess", "theirs": "Analyst"}]
        conn.execute("INSERT INTO sync_conflicts (entity, record_id, kind, fields, theirs, version, mutation_id, "
                     "created_at) VALUES ('contact', ?, 'fields', ?, NULL, 3, 7, ?)",
                     (contact.id, json.dumps(fields), db_time(utcnow())))
    return contact, pipeline


def test_conflicts_and_problems_are_listed_and_resolved(qtbot, core, tmp_path):
    from crm_desktop.ui.sync_view import SyncPage

    contact, pipeline = _seed(core.services)
    page = SyncPage(core.services)
    qtbot.addWidget(page)
    page.resize(1000, 520)
    page.show()
    assert page.tabText(0) == "Conflicts (1)" and page.tabText(1) == "Sync problems (1)"
    top = page.conflicts.tree.topLevelItem(0)
    assert top.text(0) == "Contact: Ada Lovelace" and top.childCount() == 2
    assert [top.child(0).text(c) for c in range(4)] == ["City", "Berlin", "London", "Paris"]
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.grab().save(str(SHOTS / "sync-conflicts.png"))
        page.setCurrentIndex(1)
        page.grab().save(str(SHOTS / "sync-problems.png"))
        page.setCurrentIndex(0)
    page.conflicts.keep.click()
    got = core.services.contacts.get(contact.id)
    assert (got.city, got.job_title) == ("Berlin", "Countess")
    assert page.tabText(0) == "Conflicts"
    assert page.conflicts.stack.currentWidget() is page.conflicts.empty
    page.setCurrentIndex(1)
    assert "managers" in page.problems.tree.topLevelItem(0).text(3)
    page.problems.discard.click()
    assert core.services.pipelines.get(pipeline.id).name == "Sales"
    assert page.problems.stack.currentWidget() is page.problems.empty
    if SHOTS:
        page.grab().save(str(SHOTS / "sync-problems-empty.png"))


def test_status_text_says_what_a_rep_needs():
    from crm_desktop.ui.sync_view import status_text

    assert status_text(SyncStatus("offline", pending=3))[0] == "Offline · changes are saved on this computer · 3 pending"
    assert status_text(SyncStatus("syncing", phase="pull", done=2000))[0] == "Syncing… Receiving 2000"
    text, attention = status_text(SyncStatus("idle", conflicts=2, last_synced="2026-01-01T10:00:00+00:00"))
    assert text.startswith("Synced at ") and text.endswith("· 2 conflicts") and attention is None


def test_main_window_has_the_sync_indicator_page_and_f5(qtbot, core, ui_settings):
    from crm_desktop.ui.shell import MainWindow
    from crm_desktop.ui.sync_view import attach_sync

    _seed(core.services)
    window = MainWindow(core.services, settings=ui_settings, home=core.home)
    qtbot.addWidget(window)
    controller = attach_sync(window, core, start=False)
    window.resize(1280, 800)
    window.show()
    controller, widget, page = window._sync
    assert widget.label.text().startswith("Not signed in")
    widget.show_status(SyncStatus("syncing", phase="push", done=120, total=400, pending=400, conflicts=1))
    assert widget.progress.isVisible() and not widget.button.isEnabled()
    widget.show_status(SyncStatus("idle", pending=0, conflicts=1, problems=1,
                                  last_synced="2026-01-01T10:00:00+00:00"))
    widget.label.click()
    assert window.current_page() == "sync"
    if SHOTS:
        window.grab().save(str(SHOTS / "sync-window.png"))
    requested = []
    controller.worker.request_sync = lambda: requested.append(True)
    from PySide6.QtGui import QShortcut

    [f5] = [s for s in window.findChildren(QShortcut) if s.key().toString() == "F5"]
    f5.activated.emit()  # offscreen windows are never active, so a key press would not reach it
    assert requested
    window.shutdown()
