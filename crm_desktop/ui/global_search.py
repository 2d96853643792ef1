"""The global search box (Ctrl+K): instant, ranked results across every entity as you type.

Each keystroke asks the search service on a background reader; only the newest text is
searched (older keystrokes still queued are dropped), so typing never waits for SQLite.
Results show in a list that floats under the box; Enter or a click opens the record.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QLineEdit, QListWidget, QListWidgetItem, QWidget

from crm_desktop.ui.background import BackgroundReader
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

_ENTITY_ICON = {"contact": "contacts", "company": "companies", "lead": "leads", "deal": "deals",
                "activity": "activities"}
_ENTITY_LABEL = {"contact": "Contact", "company": "Company", "lead": "Lead", "deal": "Deal", "activity": "Activity"}


class GlobalSearch(QLineEdit):
    """``open_record(entity, id)`` when a result is chosen; ``results_shown(text, n)`` after each update."""

    open_record = Signal(str, str)
    results_shown = Signal(str, int)

    def __init__(self, services, *, limit: int = 12, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("GlobalSearch")
        self._services = services
        self._limit = limit
        self._asked = ""
        self.setPlaceholderText("Search everything…   Ctrl+K")
        self.setClearButtonEnabled(True)
        self.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.popup = named(QListWidget(), "SearchPopup")
        self.popup.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.popup.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.popup.itemClicked.connect(self._choose)
        self.popup.hide()
        self._reader = BackgroundReader("search", max_pending=1, parent=self)
        self._reader.finished.connect(self._show_results)
        self.textChanged.connect(self._ask)
        self.installEventFilter(self)

    def _ask(self, text: str) -> None:
        self._asked = text
        if not text.strip():
            self.popup.hide()
            self.results_shown.emit(text, 0)
            return
        search, limit = self._services.search, self._limit
        self._reader.submit(text, lambda: search.search(text, limit))

    def _show_results(self, text: str, hits) -> None:
        if text != self._asked:
            return  # typed on since; the newer answer is on its way
        self.popup.clear()
        for hit in hits:
            label = f"{hit.title}" + (f"   —   {hit.subtitle}" if hit.subtitle else "")
            item = QListWidgetItem(icon(_ENTITY_ICON.get(hit.entity, "search")), label)
            item.setToolTip(_ENTITY_LABEL.get(hit.entity, hit.entity))
            item.setData(Qt.ItemDataRole.UserRole, (hit.entity, hit.id))
            self.popup.addItem(item)
        if not hits:
            item = QListWidgetItem(f"No match for “{text}”")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.popup.addItem(item)
        else:
            self.popup.setCurrentRow(0)
        self._place_popup()
        self.results_shown.emit(text, len(hits))

    def results(self) -> list[tuple[str, str, str]]:
        """(entity, id, text) of each result shown now."""
        out = []
        for i in range(self.popup.count()):
            data = self.popup.item(i).data(Qt.ItemDataRole.UserRole)
            if data:
                out.append((data[0], data[1], self.popup.item(i).text()))
        return out

    def _place_popup(self) -> None:
        window = self.window()
        if self.popup.parent() is not window:
            self.popup.setParent(window)
        pos = self.mapTo(window, QPoint(0, self.height() + 4))
        rows = max(1, self.popup.count())
        height = min(420, rows * 30 + 12)
        self.popup.setGeometry(pos.x(), pos.y(), max(self.width(), 460), height)
        self.popup.show()
        self.popup.raise_()

    def _choose(self, item: QListWidgetItem | None = None) -> None:
        item = item or self.popup.currentItem()
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.popup.hide()
            self.open_record.emit(*data)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (watched is self and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent)
                and self.popup.isVisible()):
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                step = 1 if key == Qt.Key.Key_Down else -1
                row = max(0, min(self.popup.count() - 1, self.popup.currentRow() + step))
                self.popup.setCurrentRow(row)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._choose()
                return True
            if key == Qt.Key.Key_Escape:
                self.popup.hide()
                return True
        return super().eventFilter(watched, event)

    def close_reader(self) -> None:
        self._reader.stop()
