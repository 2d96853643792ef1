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
