"""The one question asked before unsaved edits would be lost: Save, Discard or Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_to_save(parent: QWidget | None, what: str) -> str:
    """Ask whether to save the edits to ``what``; returns "save", "discard" or "cancel"."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved changes",
                      f"You changed {what} and did not save.",
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel, parent)
    box.setInformativeText("Save the changes before leaving?")
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return "save"
    if answer == QMessageBox.StandardButton.Discard:
        return "discard"
    return "cancel"
