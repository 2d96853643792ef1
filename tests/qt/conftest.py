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
