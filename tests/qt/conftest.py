"""Fixtures for the UI tests: a main window over the temporary core, helpers to wait for pages."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings


@pytest.fixture
def ui_settings(tmp_path):
    return QSettings(str(tmp_path / "ui-test.ini"), QSettings.Format.IniFormat)


@pytest.fixture(autouse=True)
def no_unexpected_message_boxes(monkeypatch):
    """A static QMessageBox a test did not expect fails that test instead of blocking the run
    (offscreen, nobody can press its button). A test that expects one patches it itself."""
    from PySide6.QtWidgets import QMessageBox

    def unexpected(kind):
        def box(parent, title, text, *args, **kwargs):
            raise AssertionError(f"unexpected QMessageBox.{kind}: {title}: {text}")
        return box

    for kind in ("warning", "critical", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, unexpected(kind))


@pytest.fixture(autouse=True)
def unsaved_answers(monkeypatch):
    """The "unsaved changes" question, answered without a modal box (one would block the run, e.g.
    when pytest-qt closes a window whose form a test left edited): the answers queued in the list
    are given in turn, then "discard". Each question asked is recorded in ``.asked``."""

    class Answers(list):
        asked: list

    answers = Answers()
    answers.asked = []

    def ask(parent, what):
        answers.asked.append(what)
        return answers.pop(0) if answers else "discard"

    monkeypatch.setattr("crm_desktop.ui.unsaved.ask_to_save", ask)
    return answers


@pytest.fixture
def main_window(qtbot, core, ui_settings):
    """The real main window over an empty database, shown offscreen."""
    from crm_desktop.ui.shell import MainWindow

    window = MainWindow(core.services, settings=ui_settings, home=core.home)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    yield window
    window.shutdown()


def wait_rows_loaded(qtbot, model, rows=(0,), timeout=5000):
    """Wait until the model knows its count and has loaded the given rows."""
    qtbot.waitUntil(lambda: model.count_known, timeout=timeout)
    for row in rows:
        model.data(model.index(row, 0))  # ask, as a view would when the row scrolls in
    qtbot.waitUntil(lambda: all(model.is_loaded(r) for r in rows), timeout=timeout)


class GuiThreadDatabaseGuard:
    """Records every SQL statement SQLite runs on the GUI (main) thread while :meth:`watching`.

    SQLite calls a connection's trace callback on the thread that runs the statement, so this
    sees everything: SQLAlchemy sessions, ``read_connection()`` used through the raw driver, and
    plain ``sqlite3.connect`` calls. Connections are traced when they are made (``sqlite3.connect``
    is wrapped) and when a pool hands one out (connections pooled before the guard was installed).
    """

    def __init__(self):
        self.active = False
        self.hits: list[tuple[str, str]] = []
        self._remove_listener = None

    def _trace(self, statement: str) -> None:
        import threading
        import traceback

        if self.active and threading.current_thread() is threading.main_thread():
            frames = [f for f in traceback.extract_stack()[:-1] if "crm_desktop" in f.filename]
            where = " <- ".join(f"{f.filename.rsplit('crm_desktop/', 1)[-1]}:{f.lineno} {f.name}"
                                for f in reversed(frames[-4:]))
            self.hits.append((statement.strip().splitlines()[0][:120], where or "(outside crm_desktop)"))

    def trace(self, connection) -> None:
        if connection is not None:
            connection.set_trace_callback(self._trace)  # setting it again is harmless

    def install(self, monkeypatch) -> None:
        import sqlite3
        import sqlite3.dbapi2

        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        real_connect = sqlite3.connect

        def connect(*args, **kwargs):
            connection = real_connect(*args, **kwargs)
            self.trace(connection)
            return connection

        monkeypatch.setattr(sqlite3, "connect", connect)
        monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)

        def checkout(dbapi_connection, _record, _proxy):
            self.trace(dbapi_connection)

        event.listen(Pool, "checkout", checkout)
        self._remove_listener = lambda: event.remove(Pool, "checkout", checkout)

    def uninstall(self) -> None:
        self.active = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def watching(self):
        """A context: statements on the GUI thread inside it fail the test, naming the first one."""
        import contextlib

        @contextlib.contextmanager
        def scope():
            self.hits.clear()
            self.active = True
            try:
                yield self
            finally:
                self.active = False
            self.assert_clean()

        return scope()

    def assert_clean(self) -> None:
        if self.hits:
            statement, where = self.hits[0]
            pytest.fail(f"the database was used on the GUI thread ({len(self.hits)} statement(s)); first: "
                        f"{statement!r} from {where}", pytrace=False)


@pytest.fixture
def gui_db_guard(monkeypatch):
    """A :class:`GuiThreadDatabaseGuard`, installed for this test (``with gui_db_guard.watching(): ...``)."""
    guard = GuiThreadDatabaseGuard()
    guard.install(monkeypatch)
    yield guard
    guard.uninstall()


def show_and_wait(qtbot, view, record_id, timeout=5000):
    """Open a record in an entity page and wait until the detail panel shows it (it is read on the
    executor's reader) and its related lists have come back."""
    view.show_record_id(record_id)
    detail = view.detail
    qtbot.waitUntil(lambda: detail.record is not None and detail.record.id == record_id, timeout=timeout)
    qtbot.waitUntil(lambda: not any(v.count() == 1 and v.item(0).text() == "Loading…"
                                    for v in detail.related_lists.values()), timeout=timeout)
    return detail


def open_and_wait(qtbot, window, entity, record_id, timeout=5000):
    """``window.open_record`` and wait until the record's page shows it."""
    from crm_desktop.ui.entities import PAGE_OF_ENTITY

    window.open_record(entity, record_id)
    view = window.lists[PAGE_OF_ENTITY[entity]]
    qtbot.waitUntil(lambda: view.detail.record is not None and view.detail.record.id == record_id, timeout=timeout)
    qtbot.waitUntil(lambda: not any(v.count() == 1 and v.item(0).text() == "Loading…"
                                    for v in view.detail.related_lists.values()), timeout=timeout)
    return view.detail
