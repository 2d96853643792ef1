"""Import with a column-mapping preview, a cancellable progress dialog and a summary.

Built on :mod:`crm_desktop.services.importer`: ``preview()`` guesses the mapping and parses
the first rows; the import itself is the command line's ``crm-desktop import ... --progress-json``, run in a
child process (:class:`ImportProcess`, a QProcess) so that its Python work never holds the GIL the
window needs to paint. It runs in one transaction: Cancel ends the child before it commits, so
the database is left as it was. After a successful import the dialog publishes the same
``import.finished`` event the in-process import did, so views and plugins refresh.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QProcess, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QBoxLayout, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel, QProgressDialog, QPushButton,
    QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget, QMessageBox,
)

from crm_desktop.errors import CrmError
from crm_desktop.ui.theme import named

if TYPE_CHECKING:
    from crm_desktop.services.importer import ImportSummary

log = logging.getLogger(__name__)


def importer_available() -> bool:
    return importlib.util.find_spec("crm_desktop.services.importer") is not None


class ImportFailed(CrmError):
    """The child import reported an error (its one line) or ended without a summary."""


def import_command(home_root: Path, entity: str, path: Path, mapping: dict[str, str | None] | None,
                   skip_invalid: bool = False) -> tuple[str, list[str]]:
    """The program and arguments of the command-line import the dialog runs as a child process.

    From a checkout or an installed package that is ``python -m crm_desktop ...``; in the frozen
    (PyInstaller) build ``sys.executable`` is the app itself, which takes the same subcommands."""
    cli_entity = {"contact": "contacts", "company": "companies"}.get(entity, entity)
    prefix = [] if getattr(sys, "frozen", False) else ["-m", "crm_desktop"]
    args = [*prefix, "--home", str(home_root), "import", cli_entity, str(path), "--progress-json"]
    for column, field in (mapping or {}).items():
        args.append(f"--map={column}={field or ''}")  # "--map=..." so a column starting with "-" stays a value
    if skip_invalid:
        args.append("--skip-invalid")
    return sys.executable, args


def home_of_services(services) -> Path:
    """The home folder of the database ``services`` write to (what ``--home`` names)."""
    from crm_desktop.paths import Home

    db_path = Path(services.db.path).resolve()
    if Home(db_path.parent).db_path != db_path:
        raise ImportFailed(f"{db_path} is not the database of a crm-desktop home folder")
    return db_path.parent


class ImportProcess(QObject):
    """Runs ``crm-desktop import ... --progress-json`` in a child process (QProcess).

    The import's Python work then never competes with the GUI thread for the GIL: the window
    keeps painting. SQLite's file lock serialises the child with the app's own writer thread.
    ``progress(done, total)``; ``done(summary_or_exception)`` once, with an
    :class:`~crm_desktop.services.importer.ImportSummary` (``cancelled`` after :meth:`cancel`) or
    an :class:`ImportFailed` carrying one line.
    """

    progress = Signal(int, int)
    done = Signal(object)

    #: how long a cancelled child may take to end on SIGTERM before it is killed
    KILL_AFTER_MS = 3000

    def __init__(self, services, entity: str, path: Path, mapping: dict | None, skip_invalid: bool = False,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.entity = entity
        self.path = Path(path)
        self.program, self.arguments = import_command(home_of_services(services), entity, self.path, mapping,
                                                      skip_invalid)
        self.cancel_requested = False
        self.unmapped: list[str] = []
        self._finished = False
        self._buffer = b""
        self._summary: ImportSummary | None = None
        self._error: str | None = None
        self._stderr = b""
        self.process = QProcess(self)
        self.process.setProgram(self.program)
        self.process.setArguments(self.arguments)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)

    def start(self) -> None:
        log.info("import child: %s %s", self.program, " ".join(self.arguments))
        self.process.start()
        self.process.closeWriteChannel()

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """End the child: its single transaction never commits, so SQLite rolls it back."""
        if self._finished or self.cancel_requested:
            return
        self.cancel_requested = True
        if sys.platform == "win32":  # terminate() posts WM_CLOSE, which a console process ignores
            self.process.kill()
            return
        self.process.terminate()
        QTimer.singleShot(self.KILL_AFTER_MS, self._kill_if_running)

    def _kill_if_running(self) -> None:
        if not self._finished and self.running():
            self.process.kill()

    def wait(self, msecs: int = 30000) -> bool:
        return self.process.waitForFinished(msecs)

    def _read_stderr(self) -> None:
        self._stderr = (self._stderr + self.process.readAllStandardError().data())[-8192:]

    def _read_stdout(self) -> None:
        self._buffer += self.process.readAllStandardOutput().data()
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        if not raw.strip():
            return
        try:
            message = json.loads(raw)
        except ValueError:
            log.debug("import child said: %r", raw[:200])
            return
        if not isinstance(message, dict):
            return
        if "done" in message and "total" in message:
            if not self.cancel_requested:
                self.progress.emit(int(message["done"]), int(message["total"]))
        elif "summary" in message:
            from crm_desktop.services.importer import ImportSummary

            self._summary = ImportSummary.from_dict(message["summary"])
        elif "error" in message:
            self._error = " ".join(str(message["error"]).split()) or "failed"

    def _on_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:  # finished() does not follow
            self._finish(ImportFailed(f"could not start the import ({self.program}): "
                                      f"{self.process.errorString()}"))

    def _on_finished(self, exit_code: int, exit_status) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._buffer:
            self._line(self._buffer)
            self._buffer = b""
        if self._summary is not None:  # committed (even when Cancel came too late to stop it)
            self._finish(self._summary)
        elif self.cancel_requested:
            from crm_desktop.services.importer import ImportSummary, detect_format

            try:
                fmt = detect_format(self.path, None)
            except Exception:
                fmt = ""
            self._finish(ImportSummary(self.entity, str(self.path), fmt, cancelled=True, unmapped=self.unmapped))
        elif self._error is not None:
            self._finish(ImportFailed(self._error))
        else:
            last = [line for line in self._stderr.decode("utf-8", "replace").splitlines() if line.strip()]
            reason = last[-1].strip() if last else f"exit code {exit_code}"
            self._finish(ImportFailed(f"the import ended unexpectedly: {reason}"))

    def _finish(self, result) -> None:
        if self._finished:
            return
        self._finished = True
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
        self.info = named(QLabel(wordWrap=True), "Muted")
        layout.addWidget(self.info)
        self.table = QTableWidget()
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(28)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setDefaultSectionSize(150)
        layout.addWidget(self.table, 1)
        self.unmapped_label = named(QLabel(wordWrap=True), "Muted")
        self.unmapped_label.hide()
        layout.addWidget(self.unmapped_label)
        # the choice of issue 8: all or nothing (default), or set the invalid rows aside
        self.skip_invalid = QCheckBox("Import the valid rows and write the refused ones, with the reason, "
                                      "to a CSV file beside this file")
        self.skip_invalid.setToolTip("Off: one invalid row refuses the whole file and nothing is imported.")
        layout.addWidget(self.skip_invalid)
        self.message = named(QLabel(wordWrap=True), "FieldError")
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
        self._run: ImportProcess | None = None
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
                source = reverse.get(field)
                if source in headers:
                    self.table.setItem(r, headers.index(source), QTableWidgetItem(value))

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
        """Start the import in a child process, with a cancellable progress dialog."""
        self.import_button.setEnabled(False)
        self.message.hide()
        self.error = None
        mapping = self.mapping()
        try:
            self._run = ImportProcess(self._services, self.entity, self.path, mapping, self.skip_invalid.isChecked(),
                                      parent=self)
        except CrmError as exc:
            self._run = None
            self._on_done(exc)
            return
        self._run.unmapped = [h for h, f in (mapping or {}).items() if not f]
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
        """End the running import's process; its transaction rolls back, leaving the database unchanged."""
        if self._run is not None and self.running():
            self._run.cancel()
            if self.progress_dialog is not None:
                self.progress_dialog.setLabelText("Cancelling… nothing will be changed")

    def reject(self) -> None:  # Esc or closing the window while the child runs: cancel it first
        run = self._run
        if run is not None and self.running():
            self.cancel_import()
            run.wait(ImportProcess.KILL_AFTER_MS + 2000)
        super().reject()

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
        if not result.cancelled:
            self._publish_finished(result)

    def _publish_finished(self, summary) -> None:
        """The import committed in another process: tell this one, as the in-process import did
        (the shell refreshes its views from it; plugins get it as ``crm_event``)."""
        from crm_desktop.services.events import Event

        events = getattr(self._services, "events", None)
        if events is None:
            return
        payload = {"entity": summary.entity, "path": summary.path, "created": summary.created,
                   "updated": summary.updated, "unchanged": summary.unchanged, "skipped": summary.skipped,
                   "refused": summary.refused}
        events.publish(Event("import.finished", payload, str(getattr(self._services, "actor", "core"))))

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
        self.summary_view = named(QTextBrowser(), "ImportSummary")
        self.summary_view.setHtml(text)
        layout = self.layout()
        assert isinstance(layout, QBoxLayout)  # the dialog's column (__init__)
        layout.insertWidget(1, self.summary_view, 1)
        self.info.setText(self.path.name)
