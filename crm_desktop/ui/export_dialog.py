"""Choosing where to export: ask before replacing a file that exists.

The save dialog's own overwrite question is switched off (``DontConfirmOverwrite``) because it
does not see the file we really write: with the vCard filter chosen and no suffix typed, ".vcf"
is added after the dialog closed, and some platform dialogs never ask at all. We ask once,
ourselves, about the final path. The export itself writes a temporary file beside the target
and renames it over the target only when complete (``services.exporter``), so an export that
fails or is cancelled leaves the old file as it was.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

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
