"""One dialog for every plugin that failed, shown once per batch of failures.

Anki's lesson (``qt/aqt/errors.py``): when five add-ons break at start-up the
user should see one window that names all five, with the tracebacks and a
"Copy details" button for the bug report, not five modal popups in a row.
:class:`PluginFailureReporter` collects failures as the host reports them and
shows :class:`PluginFailureDialog` once the burst is over; a failure that
arrives while the dialog is open is added to it.
"""

from __future__ import annotations

import logging
import platform
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from crm_desktop import __version__

log = logging.getLogger(__name__)

#: How long to wait for more failures before showing the dialog (start-up
#: failures arrive in a burst; one dialog for the whole burst).
BATCH_MS = 250


@dataclass(frozen=True)
class PluginFailure:
    """One failed plugin: its name, a one-line summary and the full traceback."""

    plugin: str
    summary: str
    details: str
    version: str = ""


def summarize(error: str | None) -> str:
    """The last non-empty line of a traceback: ``ValueError: bad thing``."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class PluginFailureDialog(QDialog):
    """Lists failed plugins on the left, the selected one's traceback on the right."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PluginFailureDialog")
        self.setWindowTitle("Plugins failed")
        self.setModal(False)
        self.resize(760, 420)
        self._failures: list[PluginFailure] = []

        self._headline = QLabel()
        self._headline.setObjectName("failureHeadline")
        self._headline.setWordWrap(True)
        hint = QLabel(
            "The rest of the app keeps working. Failed plugins stay off until you reload or "
            "re-enable them in the Plugin manager. Use “Copy details” when you report the problem "
            "to the plugin's author."
        )
        hint.setWordWrap(True)
        hint.setObjectName("failureHint")

        self.plugin_list = QListWidget()
        self.plugin_list.setObjectName("failureList")
        self.plugin_list.setMinimumWidth(220)
        self.plugin_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.plugin_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.plugin_list.currentRowChanged.connect(self._show_row)
        self.details = QPlainTextEdit()
        self.details.setObjectName("failureDetails")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(max(8.0, self.font().pointSizeF() - 0.5))
        self.details.setFont(mono)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plugin_list)
        split.addWidget(self.details)
        split.setStretchFactor(1, 1)
        split.setSizes([240, 500])

        self.copy_button = QPushButton("Copy details")
        self.copy_button.setToolTip("Copy every traceback with app and Python versions to the clipboard")
        self.copy_button.clicked.connect(self.copy_details)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        buttons.accepted.connect(self.close)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 12)
        layout.setSpacing(8)
        layout.addWidget(self._headline)
        layout.addWidget(hint)
        layout.addWidget(split, 1)
        layout.addLayout(row)
        self.setStyleSheet(_STYLE)

    @property
    def failures(self) -> list[PluginFailure]:
        """The failures shown, oldest first."""
        return list(self._failures)

    def add_failures(self, failures: list[PluginFailure]) -> None:
        """Add (or update, for a plugin already listed) failures and refresh."""
        for failure in failures:
            self._failures = [f for f in self._failures if f.plugin != failure.plugin]
            self._failures.append(failure)
        self.plugin_list.clear()
        for failure in self._failures:
            item = QListWidgetItem(f"{failure.plugin}\n{failure.summary}")
            item.setToolTip(failure.summary)
            self.plugin_list.addItem(item)
        names = ", ".join(f.plugin for f in self._failures)
        count = len(self._failures)
        self._headline.setText(
            f"<b>{count} plugin{'s' if count != 1 else ''} failed:</b> {names}"
        )
        self.plugin_list.setCurrentRow(count - 1)

    def _show_row(self, row: int) -> None:
        if 0 <= row < len(self._failures):
            self.details.setPlainText(self._failures[row].details)

    def details_text(self) -> str:
        """Everything a bug report needs: versions, then each plugin's traceback."""
        parts = [
            f"crm-desktop {__version__}, Python {sys.version.split()[0]}, {platform.platform()}",
        ]
        for failure in self._failures:
            head = f"{failure.plugin} {failure.version}".strip()
            parts.append(f"=== {head}: {failure.summary}\n{failure.details.rstrip()}")
        return "\n\n".join(parts) + "\n"

    def copy_details(self) -> None:
        """Put :meth:`details_text` on the clipboard."""
        QGuiApplication.clipboard().setText(self.details_text())
        self.copy_button.setText("Copied ✓")
        # the context object cancels the reset if the dialog is gone by then
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy details"))


class PluginFailureReporter(QObject):
    """Collects failures and shows them in one :class:`PluginFailureDialog` per batch."""

    #: emitted with the dialog each time it is shown (tests and the shell may listen)
    shown = Signal(object)

    def __init__(self, parent_widget: QWidget | None = None, *, batch_ms: int = BATCH_MS):
        super().__init__(parent_widget)
        self._parent_widget = parent_widget
        self._pending: list[PluginFailure] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(batch_ms)
        self._timer.timeout.connect(self.flush)
        self.dialog: PluginFailureDialog | None = None

    def report(self, failure: PluginFailure) -> None:
        """Queue a failure; the dialog appears once no more arrive for a moment."""
        log.warning("plugin %s failed: %s", failure.plugin, failure.summary)
        self._pending.append(failure)
        self._timer.start()  # restart: wait for the burst to end

    def flush(self) -> None:
        """Show the queued failures now (in the open dialog, if there is one)."""
        self._timer.stop()
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self.dialog is None or not self.dialog.isVisible():
            if self.dialog is not None:
                self.dialog.deleteLater()
            self.dialog = PluginFailureDialog(self._parent_widget)
            self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.dialog.add_failures(batch)
        self.dialog.show()
        self.dialog.raise_()
        self.shown.emit(self.dialog)


_STYLE = """
#PluginFailureDialog { background: #fbfbfc; }
#failureHeadline { color: #9f1d1d; font-size: 14px; }
#failureHint { color: #5b6270; }
#failureList { border: 1px solid #d8dbe2; border-radius: 6px; background: white; }
#failureList::item { padding: 6px 8px; border-bottom: 1px solid #eef0f4; color: #1f2430; }
#failureList::item:selected { background: #fde8e8; color: #7f1414; }
#failureDetails { border: 1px solid #d8dbe2; border-radius: 6px; background: #1e222a; color: #e6e8ee;
                  selection-background-color: #3d4a63; padding: 6px; }
"""
