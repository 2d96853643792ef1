"""Import with a column-mapping preview, a cancellable progress dialog and a summary.

Built on :mod:`crm_desktop.services.importer`: ``preview()`` guesses the mapping and parses
the first rows; ``import_file()`` runs in one transaction and calls ``progress(done, total)``;
returning False cancels and rolls everything back, so Cancel leaves the database as it was.
The import runs on a worker thread; the dialog only shows progress.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from html import escape
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel, QProgressDialog, QPushButton,
    QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget, QApplication, QMessageBox,
)

from crm_desktop.errors import CrmError

log = logging.getLogger(__name__)


def importer_available() -> bool:
    return importlib.util.find_spec("crm_desktop.services.importer") is not None


class _ImportRun(QObject):
    """Runs ``import_file`` on a thread; ``progress(done, total)`` and ``done(summary_or_error)``."""

    progress = Signal(int, int)
    done = Signal(object)

    def __init__(self, services, entity: str, path: Path, mapping: dict | None, skip_invalid: bool = False):
        super().__init__()
        self.cancel_requested = threading.Event()
        self._args = (services, entity, path, mapping, skip_invalid)
        self._thread = threading.Thread(target=self._run, name="crm-ui-import", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _report(self, done: int, total: int) -> bool:
        self.progress.emit(done, total)
        return not self.cancel_requested.is_set()

    def _run(self) -> None:
        from crm_desktop.services import importer

        services, entity, path, mapping, skip_invalid = self._args
        try:
            result = importer.import_file(services, entity, path, mapping=mapping, progress=self._report,
                                          skip_invalid=skip_invalid)
        except Exception as exc:  # shown in the dialog; CrmErrors carry the file line
            log.info("import of %s failed: %s", path, exc)
            result = exc
        self.done.emit(result)


class ImportDialog(QDialog):
    """Preview a file, adjust the column mapping, import it, show what happened and why."""

    def __init__(self, services, entity: str, path: Path, parent: QWidget | None = None):
        super().__init__(parent)
        from crm_desktop.services import importer

        self._importer = importer
        self._services = services
        self.entity = entity
        self.path = Path(path)
        self.summary = None
        self.error: str | None = None
        self.setWindowTitle(f"Import {entity}s from {self.path.name}")
        self.resize(880, 560)
        layout = QVBoxLayout(self)
        self.info = QLabel(objectName="Muted", wordWrap=True)
        layout.addWidget(self.info)
        self.table = QTableWidget()
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(28)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setDefaultSectionSize(150)
        layout.addWidget(self.table, 1)
        self.unmapped_label = QLabel(objectName="Muted", wordWrap=True)
        self.unmapped_label.hide()
        layout.addWidget(self.unmapped_label)
        # the choice of issue 8: all or nothing (default), or set the invalid rows aside
        self.skip_invalid = QCheckBox("Import the valid rows and write the refused ones, with the reason, "
                                      "to a CSV file beside this file")
        self.skip_invalid.setToolTip("Off: one invalid row refuses the whole file and nothing is imported.")
        layout.addWidget(self.skip_invalid)
        self.message = QLabel(objectName="FieldError", wordWrap=True)
        self.message.hide()
        layout.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setProperty("primary", True)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.run_import)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.mapping_boxes: dict[str, QComboBox] = {}
        self.progress_dialog: QProgressDialog | None = None
        self._run: _ImportRun | None = None
        self._load_preview()

    def _load_preview(self) -> None:
        try:
            preview = self._importer.preview(self.path, self.entity)
        except CrmError as exc:
            self.info.setText(str(exc))
            self.import_button.setEnabled(False)
            self.error = str(exc)
            return
        self.preview = preview
        self.info.setText(f"{preview.total_rows:,} rows in {self.path.name} ({preview.format.upper()}). "
                          "Choose which field each column goes to; the first rows are shown as they will be read.")
        self._show_unmapped(preview.unmapped)
        if preview.format != "csv":
            headers = list(preview.fields)
            self.table.setColumnCount(len(headers))
            self.table.setHorizontalHeaderLabels(headers)
            self.table.setRowCount(len(preview.rows))
            for r, (_, values) in enumerate(preview.rows):
                for c, name in enumerate(headers):
                    self.table.setItem(r, c, QTableWidgetItem(values.get(name, "")))
            return
        headers = preview.headers
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(preview.rows) + 1)
        choices = ["(skip)"] + list(preview.fields) + (["full_name"] if self.entity == "contact" else [])
        for c, header in enumerate(headers):
            box = QComboBox()
            box.addItems(choices)
            box.setCurrentText(preview.mapping.get(header) or "(skip)")
            box.currentTextChanged.connect(self._mapping_changed)
            self.mapping_boxes[header] = box
            self.table.setCellWidget(0, c, box)
        # preview.rows are already mapped to fields; show them under the column they came from
        reverse = {v: k for k, v in preview.mapping.items() if v}
        for r, (_, values) in enumerate(preview.rows, start=1):
            for field, value in values.items():
                header = reverse.get(field)
                if header in headers:
                    self.table.setItem(r, headers.index(header), QTableWidgetItem(value))

    def _show_unmapped(self, unmapped) -> None:
        if unmapped:
            self.unmapped_label.setText("Not imported (no field chosen): " + ", ".join(unmapped))
            self.unmapped_label.show()
        else:
            self.unmapped_label.setText("")
            self.unmapped_label.hide()

    def mapping(self) -> dict[str, str | None] | None:
        if not self.mapping_boxes:
            return None
        return {h: (None if b.currentText() == "(skip)" else b.currentText()) for h, b in self.mapping_boxes.items()}

    def _mapping_changed(self) -> None:
        mapping = self.mapping() or {}
        self._show_unmapped([h for h, f in mapping.items() if not f])

    def run_import(self) -> None:
        """Start the import with a cancellable progress dialog."""
        self.import_button.setEnabled(False)
        self.message.hide()
        self._run = _ImportRun(self._services, self.entity, self.path, self.mapping(), self.skip_invalid.isChecked())
        total = getattr(getattr(self, "preview", None), "total_rows", 0) or 0
        self.progress_dialog = QProgressDialog(f"Importing {self.path.name}…", "Cancel", 0, max(1, total), self)
        self.progress_dialog.setWindowTitle("Import")
        self.progress_dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.progress_dialog.setMinimumDuration(0)
        self.progress_dialog.setAutoClose(False)
        self.progress_dialog.setAutoReset(False)
        self.progress_dialog.canceled.connect(self.cancel_import)
        self._run.progress.connect(self._on_progress)
        self._run.done.connect(self._on_done)
        self.progress_dialog.show()
        self._run.start()

    def cancel_import(self) -> None:
        """Ask the running import to stop; it rolls back, leaving the database unchanged."""
        if self._run is not None:
            self._run.cancel_requested.set()
            if self.progress_dialog is not None:
                self.progress_dialog.setLabelText("Cancelling… nothing will be changed")

    def running(self) -> bool:
        return self._run is not None and self.summary is None and self.error is None

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress_dialog is not None and not self.progress_dialog.wasCanceled():
            self.progress_dialog.setMaximum(max(1, total))
            self.progress_dialog.setValue(done)

    def _close_progress(self) -> None:
        dialog, self.progress_dialog = self.progress_dialog, None
        if dialog is not None:
            dialog.canceled.disconnect(self.cancel_import)
            dialog.close()
            dialog.deleteLater()

    def _on_done(self, result) -> None:
        self._close_progress()  # whatever the outcome: a failed import must not leave it open
        if isinstance(result, Exception):
            self.error = str(result)
            self.message.setText(f"Nothing was imported: {result}")
            self.message.show()
            self.import_button.setEnabled(True)
            return
        self.summary = result
        self.show_summary(result)

    def show_summary(self, summary) -> None:
        """Replace the preview by what was created, updated and skipped (and why)."""
        self.table.hide()
        self.import_button.hide()
        self.skip_invalid.hide()
        self.unmapped_label.hide()
        if summary.cancelled:
            text = "<h3>Import cancelled</h3><p>Nothing was changed.</p>"
        else:
            text = (f"<h3>Import finished</h3><p><b>{summary.created}</b> created · <b>{summary.updated}</b> updated · "
                    f"<b>{summary.unchanged}</b> unchanged · <b>{summary.skipped}</b> skipped"
                    + (f" · {summary.companies_created} new companies" if summary.companies_created else "")
                    + "</p>")
            if summary.refused:
                text += (f"<p><b>{summary.refused}</b> rows refused and not imported; they are in "
                         f"<code>{escape(summary.refused_path or '')}</code> with the reason.</p><ul>" + "".join(
                             f"<li>line {r.line}: {escape(r.reason or '')}</li>" for r in summary.refused_lines[:200])
                         + "</ul>")
            if summary.unmapped:
                text += ("<p><b>Not imported</b> (no field for these columns): "
                         + escape(", ".join(summary.unmapped)) + "</p>")
            skipped = summary.skipped_lines
            if skipped:
                text += "<p><b>Skipped lines</b></p><ul>" + "".join(
                    f"<li>line {r.line}: {escape(r.reason or '')}</li>" for r in skipped[:200]) + "</ul>"
                if len(skipped) > 200:
                    text += f"<p>… and {len(skipped) - 200} more</p>"
        self.summary_view = QTextBrowser(objectName="ImportSummary")
        self.summary_view.setHtml(text)
        self.layout().insertWidget(1, self.summary_view, 1)
        self.info.setText(self.path.name)


def export_with_progress(services, entity: str, path: Path, parent: QWidget | None = None) -> int | None:
    """Export with a progress dialog (exports are fast; this runs on the UI thread, processing events)."""
    from crm_desktop.services import exporter

    dialog = QProgressDialog(f"Exporting to {path.name}…", "Cancel", 0, 1, parent)
    dialog.setMinimumDuration(300)

    def progress(done: int, total: int) -> bool:
        dialog.setMaximum(max(1, total))
        dialog.setValue(done)
        QApplication.processEvents()
        return not dialog.wasCanceled()

    fmt = "vcard" if path.suffix.lower() == ".vcf" else "csv"
    try:
        count = exporter.export_file(services, entity, path, fmt=fmt, progress=progress)
    except CrmError as exc:
        QMessageBox.warning(parent, "Export", str(exc))
        return None
    finally:
        dialog.close()
    return count
