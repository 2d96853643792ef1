"""The import dialog: mapping preview, summary with reasons, and a cancel that changes nothing."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtWidgets import QPushButton

from crm_desktop.ui.import_dialog import ImportDialog


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Vorname", "Nachname", "E-Mail", "Firma", "Lieblingsfarbe"])
        writer.writerows(rows)
    return path


@pytest.fixture
def small_csv(tmp_path):
    return write_csv(tmp_path / "people.csv", [
        ["Ada", "Lovelace", "ada@example.com", "Analytical Engines", "blue"],
        ["Grace", "Hopper", "grace@example.com", "Navy", "green"],
        ["Ada", "Lovelace", "ada@example.com", "Analytical Engines", "blue"],  # the same person again
    ])


def test_preview_shows_guessed_mapping_and_rows(qtbot, services, small_csv):
    dialog = ImportDialog(services, "contact", small_csv)
    qtbot.addWidget(dialog)
    assert "3 rows" in dialog.info.text()
    mapping = dialog.mapping()
    assert mapping["E-Mail"] == "email" and mapping["Lieblingsfarbe"] is None
    email_column = list(dialog.mapping_boxes).index("E-Mail")
    assert dialog.table.item(1, email_column).text() == "ada@example.com"


def test_import_reports_created_and_skipped_with_the_reason(qtbot, services, small_csv):
    dialog = ImportDialog(services, "contact", small_csv)
    qtbot.addWidget(dialog)
    dialog.mapping_boxes["Vorname"].setCurrentText("first_name")
    dialog.mapping_boxes["Nachname"].setCurrentText("last_name")
    dialog.run_import()
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=10000)
    assert (dialog.summary.created, dialog.summary.skipped) == (2, 1)
    text = dialog.summary_view.toPlainText()
    assert "2 created" in text and "1 skipped" in text and "line 4" in text
    assert services.contacts.count() == 2


def test_cancel_leaves_the_database_as_it_was(qtbot, services, tmp_path):
    services.contacts.create(first_name="Already", last_name="There")
    big = write_csv(tmp_path / "big.csv", [[f"F{i}", f"L{i}", f"p{i}@example.com", f"Firm {i % 50}", ""]
                                           for i in range(6000)])
    dialog = ImportDialog(services, "contact", big)
    qtbot.addWidget(dialog)
    dialog.run_import()
    [cancel] = dialog.progress_dialog.findChildren(QPushButton)
    cancel.click()  # the user presses Cancel while it runs
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=20000)
    assert dialog.summary.cancelled
    assert "Nothing was changed" in dialog.summary_view.toPlainText()
    assert services.contacts.count() == 1
    assert services.companies.count() == 0


def test_a_file_that_is_not_a_contact_list_says_why(qtbot, services, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n"unterminated,1\n', encoding="utf-8")
    dialog = ImportDialog(services, "contact", bad)
    qtbot.addWidget(dialog)
    if dialog.import_button.isEnabled():
        dialog.run_import()
        qtbot.waitUntil(lambda: dialog.error is not None or dialog.summary is not None, timeout=10000)
    assert dialog.error is not None and "bad.csv" in dialog.error
    assert services.contacts.count() == 0


@pytest.fixture
def bad_row_csv(tmp_path):
    return write_csv(tmp_path / "mixed.csv", [
        ["Ada", "Lovelace", "ada@example.com", "Analytical Engines", "blue"],
        ["Bad", "Mail", "bad@@example.com", "", ""],
        ["Grace", "Hopper", "grace@example.com", "Navy", "green"],
    ])


def test_preview_names_the_columns_that_will_not_be_imported(qtbot, services, small_csv):
    dialog = ImportDialog(services, "contact", small_csv)
    qtbot.addWidget(dialog)
    assert "Lieblingsfarbe" in dialog.unmapped_label.text()
    dialog.mapping_boxes["Lieblingsfarbe"].setCurrentText("notes")
    assert "Lieblingsfarbe" not in dialog.unmapped_label.text()


def test_a_failed_import_closes_the_progress_dialog_and_says_why(qtbot, services, bad_row_csv):
    dialog = ImportDialog(services, "contact", bad_row_csv)
    qtbot.addWidget(dialog)
    dialog.run_import()
    progress = dialog.progress_dialog
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=10000)
    from shiboken6 import isValid

    assert dialog.progress_dialog is None and (not isValid(progress) or not progress.isVisible())
    assert "line 3" in dialog.message.text() and "Nothing was imported" in dialog.message.text()
    assert services.contacts.count() == 0


def test_import_the_valid_rows_and_set_the_refused_one_aside(qtbot, services, bad_row_csv):
    dialog = ImportDialog(services, "contact", bad_row_csv)
    qtbot.addWidget(dialog)
    dialog.skip_invalid.setChecked(True)
    dialog.run_import()
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=10000)
    assert (dialog.summary.created, dialog.summary.refused) == (2, 1)
    text = dialog.summary_view.toPlainText()
    assert "1 rows refused" in text and "mixed.refused.csv" in text and "line 3" in text
    assert "Lieblingsfarbe" in text
    assert (bad_row_csv.parent / "mixed.refused.csv").exists()


# --- the import runs in a child process (issue 8: the UI thread does no database work) -------------

def _table_counts(db_path):
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE '%fts%'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


def test_the_import_runs_in_a_child_process_with_the_chosen_mapping(qtbot, services, small_csv, monkeypatch):
    from crm_desktop.services import importer

    def not_here(*args, **kwargs):
        raise AssertionError("import_file ran in the app's process")

    monkeypatch.setattr(importer, "import_file", not_here)
    events = []
    unsubscribe = services.events.subscribe(events.append)
    dialog = ImportDialog(services, "contact", small_csv)
    qtbot.addWidget(dialog)
    dialog.mapping_boxes["Vorname"].setCurrentText("first_name")
    dialog.mapping_boxes["Nachname"].setCurrentText("last_name")
    dialog.mapping_boxes["Lieblingsfarbe"].setCurrentText("notes")
    dialog.run_import()
    assert "--map=Lieblingsfarbe=notes" in dialog._run.arguments and "--progress-json" in dialog._run.arguments
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=20000)
    unsubscribe()
    assert (dialog.summary.created, dialog.summary.skipped) == (2, 1)
    assert "2 created" in dialog.summary_view.toPlainText() and "line 4" in dialog.summary_view.toPlainText()
    ada = [c for c in services.contacts.list().items if c.first_name == "Ada"]
    assert len(ada) == 1 and ada[0].last_name == "Lovelace" and ada[0].notes == "blue"
    [finished] = [e for e in events if e.name == "import.finished"]  # views and plugins hear of it
    assert finished.payload["created"] == 2 and finished.payload["entity"] == "contact"


def test_the_childs_progress_reaches_the_dialog(qtbot, services, tmp_path):
    big = write_csv(tmp_path / "many.csv", [[f"F{i}", f"L{i}", f"p{i}@example.com", "", ""] for i in range(3000)])
    dialog = ImportDialog(services, "contact", big)
    qtbot.addWidget(dialog)
    ticks = []
    dialog.run_import()
    dialog._run.progress.connect(lambda done, total: ticks.append((done, total)))
    progress = dialog.progress_dialog
    seen = []
    dialog._run.progress.connect(lambda done, total: seen.append(progress.value()))
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=30000)
    assert dialog.summary.created == 3000
    assert ticks and ticks[-1] == (3000, 3000) and len(ticks) >= 3
    assert max(seen) == 3000  # the progress bar itself moved


def test_cancel_ends_the_child_and_leaves_the_database_unchanged(qtbot, services, tmp_path):
    services.contacts.create(first_name="Already", last_name="There")
    big = write_csv(tmp_path / "big.csv", [[f"F{i}", f"L{i}", f"p{i}@example.com", f"Firm {i % 50}", ""]
                                           for i in range(40000)])
    before = _table_counts(services.db.path)
    dialog = ImportDialog(services, "contact", big)
    qtbot.addWidget(dialog)
    dialog.run_import()
    ticks = []
    dialog._run.progress.connect(lambda done, total: ticks.append(done))
    qtbot.waitUntil(lambda: bool(ticks), timeout=30000)  # the child is inside its transaction
    [cancel] = dialog.progress_dialog.findChildren(QPushButton)
    cancel.click()
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=20000)
    assert dialog.summary.cancelled and not dialog._run.running()
    assert "Nothing was changed" in dialog.summary_view.toPlainText()
    assert _table_counts(services.db.path) == before
    assert services.contacts.count() == 1 and services.companies.count() == 0
    services.contacts.create(first_name="Still", last_name="Writable")  # no lock left behind
    assert services.contacts.count() == 2


def test_a_file_gone_before_the_import_shows_one_line(qtbot, services, small_csv):
    dialog = ImportDialog(services, "contact", small_csv)
    qtbot.addWidget(dialog)
    small_csv.unlink()
    dialog.run_import()
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=20000)
    assert dialog.progress_dialog is None and dialog.summary is None
    text = dialog.message.text()
    assert "\n" not in text and "people.csv" in text and "no such file" in text
    assert services.contacts.count() == 0


def test_the_child_command_in_a_checkout_and_in_the_frozen_app(monkeypatch, tmp_path):
    import sys

    from crm_desktop.ui.import_dialog import import_command

    program, args = import_command(tmp_path, "company", tmp_path / "f.csv", {"-Name": "name", "X": None}, True)
    assert program == sys.executable and args[:2] == ["-m", "crm_desktop"]
    assert args[2:] == ["--home", str(tmp_path), "import", "companies", str(tmp_path / "f.csv"), "--progress-json",
                        "--map=-Name=name", "--map=X=", "--skip-invalid"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    program, args = import_command(tmp_path, "contact", tmp_path / "f.csv", None)
    assert program == sys.executable and args[:3] == ["--home", str(tmp_path), "import"]
