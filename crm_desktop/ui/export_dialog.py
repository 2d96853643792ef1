"""Exporting from the window: where to (asking before replacing a file), then the export itself.

:class:`ExportProgressDialog` runs the export on the executor's long reader (the window keeps
painting and the quick reads go on); the worker reports progress to the dialog by a queued
signal and checks the Cancel button between rows. The outcome is said once: how many were
exported (the window's status bar), "cancelled", or the error in one sentence.

The save dialog's own overwrite question is switched off (``DontConfirmOverwrite``) because it
does not see the file we really write: with the vCard filter chosen and no suffix typed, ".vcf"
is added after the dialog closed, and some platform dialogs never ask at all. We ask once,
ourselves, about the final path. The export itself writes a temporary file beside the target
and renames it over the target only when complete (``services.exporter``), so an export that
fails or is cancelled leaves the old file as it was.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressDialog, QWidget

from crm_desktop.ui.executor import InlineExecutor

log = logging.getLogger(__name__)

FILTERS = "CSV (*.csv);;vCard (*.vcf)"


def final_path(path: str, chosen_filter: str) -> Path:
    """The file the export will write: the suffix of the chosen format added when none was typed."""
    target = Path(path)
    if target.suffix.lower() not in (".csv", ".vcf"):
        target = target.with_name(target.name + (".vcf" if "vcf" in chosen_filter.lower() else ".csv"))
    return target


def confirm_replace(parent: QWidget | None, path: Path) -> bool:
    """Ask whether to replace ``path``; True when the user chose Replace."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Replace file?",
                      f"“{path.name}” already exists in {path.parent}.",
                      QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("Replacing it overwrites its contents with this export.")
    replace = box.addButton("Replace", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is replace


def choose_export_path(parent: QWidget | None, entity: str) -> Path | None:
    """Ask for the file to export ``entity`` records to; None when the user cancelled (also when
    they declined to replace an existing file)."""
    path, chosen = QFileDialog.getSaveFileName(parent, f"Export {entity}s", str(Path.home() / f"{entity}s.csv"),
                                               FILTERS, options=QFileDialog.Option.DontConfirmOverwrite)
    if not path:
        return None
    target = final_path(path, chosen or "")
    if target.exists() and not confirm_replace(parent, target):
        return None
    return target


class ExportProgressDialog(QProgressDialog):
    """Export ``entity`` records to ``path`` off the GUI thread, with progress and Cancel.

    ``outcome`` is None while it runs, then ``("done", count)``, ``("cancelled", None)`` or
    ``("failed", message)``; ``finished_export(outcome)`` is emitted once, after the dialog closed.
    """

    finished_export = Signal(object)
    _progressed = Signal(int, int)

    def __init__(self, services, entity: str, path: Path, *, executor=None, parent: QWidget | None = None):
        super().__init__(f"Exporting to {Path(path).name}…", "Cancel", 0, 0, parent)
        self.setWindowTitle("Export")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setMinimumDuration(400)  # a quick export never flashes a dialog
        self.setAutoClose(False)
        self.setAutoReset(False)
        self._services = services
        self._entity = entity
        self._path = Path(path)
        self._executor = executor if executor is not None else InlineExecutor()
        self._stop = threading.Event()
        self.outcome: tuple[str, object] | None = None
        self._progressed.connect(self._show_progress, Qt.ConnectionType.QueuedConnection)
        self.canceled.connect(self._stop.set)

    def start(self) -> None:
        """Start the export (the dialog shows itself if it takes longer than a moment)."""
        from crm_desktop.services import exporter

        services, entity, path = self._services, self._entity, self._path
        fmt = "vcard" if path.suffix.lower() == ".vcf" else "csv"
        stop, progressed = self._stop, self._progressed

        def progress(done: int, total: int) -> bool:
            try:
                progressed.emit(done, total)
            except RuntimeError:  # the dialog is gone (window closing): stop
                return False
            return not stop.is_set()

        def run() -> int | None:
            count = exporter.export_file(services, entity, path, fmt=fmt, progress=progress)
            return None if stop.is_set() else count

        self.setValue(0)
        self._executor.read_long(run, done=self._done, failed=self._failed, context=self,
                                 label=f"export {entity}s")

    def cancel(self) -> None:
        """Cancel: the export stops at the next rows and the old file stays as it was."""
        self._stop.set()
        self.setLabelText("Cancelling…")
        self.setCancelButtonText("Cancelling…")

    def _show_progress(self, done: int, total: int) -> None:
        if self.outcome is None:
            self.setMaximum(max(1, total))
            self.setValue(min(done, max(1, total)))
            self.setLabelText(f"Exporting to {self._path.name}… {done:,} of {total:,}".replace(",", "\u2009"))

    def _done(self, count: int | None) -> None:
        self._finish(("cancelled", None) if count is None else ("done", count))

    def _failed(self, exc: BaseException) -> None:
        log.warning("export to %s failed: %s", self._path, exc)
        self._finish(("failed", f"Could not export to {self._path}: {exc}".replace("\n", " ")))

    def _finish(self, outcome: tuple[str, object]) -> None:
        self.outcome = outcome
        self.hide()
        self.finished_export.emit(outcome)


def export_to(parent: QWidget, services, entity: str, path: Path, *, executor=None,
              done: Callable[[int], None] | None = None) -> ExportProgressDialog:
    """Export with :class:`ExportProgressDialog`; ``done(count)`` after a finished export, a warning
    (one sentence) after a failed one. Returns the dialog (it deletes itself when finished)."""
    dialog = ExportProgressDialog(services, entity, path, executor=executor, parent=parent)

    def finished(outcome) -> None:
        kind, value = outcome
        if kind == "done" and done is not None:
            done(value)
        elif kind == "failed":
            QMessageBox.warning(parent, "Export", value)
        dialog.deleteLater()

    dialog.finished_export.connect(finished)
    dialog.start()
    return dialog
