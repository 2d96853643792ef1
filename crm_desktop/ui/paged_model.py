"""A table model over a service's keyset pager: a million rows without loading them.

The row count comes from ``service.count(query)``; rows are fetched a page at a time
when the view asks for them: a page is loaded with ``service.list(after=key)``, the key
being the last key of the page before (when that is in the cache) or
``service.key_at(start - 1)``. Every read runs on a :class:`BackgroundReader`;
``data()`` shows a placeholder until the page arrives and then ``dataChanged`` repaints it.
Only ``max_pages`` pages are kept, least recently used first out.

There is no ``canFetchMore``/``fetchMore``: the count is known up front, so the scroll bar
is right from the start and there is no off-by-one to get wrong (see STYLE.md on the
fetchmore example).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor

from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.ui import theme
from crm_desktop.ui.background import BackgroundReader

log = logging.getLogger(__name__)

PLACEHOLDER = "…"
RECORD_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class Column:
    """A column: its header, how to show a record's value, and the service sort key, if sortable."""

    title: str
    value: Callable[[Any], Any]
    sort_key: str | None = None
    width: int = 160
    align_right: bool = False


class PagedTableModel(QAbstractTableModel):
    """Rows of one entity matching a :class:`ListQuery`, in a :class:`Sort` order.

    ``countChanged(int)`` fires when the number of matching rows is known or changes;
    ``loadFailed(str)`` when a background read raised.
    """

    countChanged = Signal(int)
    loadFailed = Signal(str)

    def __init__(self, service, columns: list[Column], *, query: ListQuery | None = None,
                 sort: Sort | None = None, page_size: int = 200, max_pages: int = 50,
                 start: bool = True, parent: QObject | None = None):
        super().__init__(parent)
        self._service = service
        self._columns = list(columns)
        self._query = query or ListQuery()
        self._sort = sort or Sort(next(iter(service.sort_keys)))
        self.page_size = page_size
        self._max_pages = max_pages
        self._count = 0
        self._count_known = False
        self._generation = 0
        self._pages: OrderedDict[int, list[Any]] = OrderedDict()
        self._last_keys: dict[int, Any] = {}
        #: pages of the previous generation, shown until fresh ones arrive (no flicker on refresh)
        self._stale: dict[int, list[Any]] = {}
        self._reader = BackgroundReader(f"{service.entity}-list", parent=self)
        self._reader.finished.connect(self._on_loaded)
        self._reader.failed.connect(self._on_failed)
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Begin counting and loading (views that are not on screen yet start later, when shown,
        so a window with six lists does not run six counts while it opens)."""
        if not self._started:
            self._started = True
            self.refresh(keep_rows=False)

    @property
    def started(self) -> bool:
        return self._started

    # -- what the view and its owner use -----------------------------------------

    @property
    def query(self) -> ListQuery:
        return self._query

    @property
    def sort_order(self) -> Sort:
        return self._sort

    @property
    def count_known(self) -> bool:
        return self._count_known

    def set_query(self, query: ListQuery) -> None:
        """Filter the rows (in SQL); the view starts again at the top."""
        if query != self._query:
            self._query = query
            self.refresh(keep_rows=False)

    def set_sort(self, sort: Sort) -> None:
        if sort != self._sort:
            self._sort = sort
            self.refresh(keep_rows=False)

    def refresh(self, *, keep_rows: bool = True) -> None:
        """Count and load again. With ``keep_rows`` the rows on screen stay until fresh ones
        replace them (used after edits, so the list neither blinks nor jumps)."""
        if not self._started:
            return  # start() will load with the query and sort in force then
        self._generation += 1
        self._reader.clear()
        self._stale = dict(self._pages) if keep_rows else {}
        self._pages.clear()
        self._last_keys.clear()
        if not keep_rows:
            self.beginResetModel()
            self._count = 0
            self._count_known = False
            self.endResetModel()
        generation, service, query = self._generation, self._service, self._query
        self._reader.submit(("count", generation), lambda: service.count(query))
        if not keep_rows:
            # submitted last, so it runs first: the first screen shows while SQL still counts
            # (counting a million rows takes ~200 ms; the first page takes ~5 ms)
            self._request(0)

    def record(self, row: int) -> Any | None:
        """The record shown in ``row``, or None while its page is loading."""
        page = self._pages.get(row // self.page_size) or self._stale.get(row // self.page_size)
        offset = row % self.page_size
        return page[offset] if page is not None and offset < len(page) else None

    def is_loaded(self, row: int) -> bool:
        page = self._pages.get(row // self.page_size)
        return page is not None and row % self.page_size < len(page)

    def loaded_rows(self) -> int:
        return sum(len(p) for p in self._pages.values())

    def busy(self) -> bool:
        return not self._reader.idle()

    def row_of(self, record_id: str) -> int | None:
        """The row of a loaded record with this id, if it is on a loaded page."""
        for index, page in self._pages.items():
            for offset, rec in enumerate(page):
                if rec.id == record_id:
                    return index * self.page_size + offset
        return None

    def close(self) -> None:
        """Stop the background reader (the window is closing)."""
        self._reader.stop()

    # -- QAbstractTableModel ------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self._columns):
            column = self._columns[section]
            if role == Qt.ItemDataRole.DisplayRole:
                return column.title
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int((Qt.AlignmentFlag.AlignRight if column.align_right else Qt.AlignmentFlag.AlignLeft)
                           | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < self._count) or not (0 <= index.column() < len(self._columns)):
            return None
        row = index.row()
        page_index = row // self.page_size
        page = self._pages.get(page_index)
        if page is not None:
            self._pages.move_to_end(page_index)
        else:
            self._request(page_index)
            page = self._stale.get(page_index)
        offset = row % self.page_size
        rec = page[offset] if page is not None and offset < len(page) else None
        column = self._columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            if rec is None:
                return PLACEHOLDER if index.column() == 0 else ""
            value = column.value(rec)
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int((Qt.AlignmentFlag.AlignRight if column.align_right else Qt.AlignmentFlag.AlignLeft)
                       | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and rec is None:
            return QColor(theme.current["muted"])
        if role == RECORD_ROLE:
            return rec
        if role == ID_ROLE:
            return rec.id if rec is not None else None
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Header clicks sort in SQL by the column's service sort key (other columns do nothing)."""
        key = self._columns[column].sort_key if 0 <= column < len(self._columns) else None
        if key:
            self.set_sort(Sort(key, order == Qt.SortOrder.DescendingOrder))

    def sort_column(self) -> int:
        """The column sorted by now (-1 if the sort is not one a column shows)."""
        for i, column in enumerate(self._columns):
            if column.sort_key == self._sort.key:
                return i
        return -1

    # -- loading --------------------------------------------------------------------

    def _request(self, page_index: int) -> None:
        key = ("page", self._generation, page_index)
        if self._reader.pending(key):
            return
        service, query, sort, size = self._service, self._query, self._sort, self.page_size
        previous_key = self._last_keys.get(page_index - 1)
        start = page_index * size
        count = self._count
        if self._count_known and start > count // 2 and previous_key is None:
            # the far half is read from the other end, in the reversed order: the last screen
            # costs as little as the first, with no deep key_at (no OFFSET walk, no anchor build)
            end = min(count, start + size) - 1
            reverse = Sort(sort.key, not sort.descending)
            skip = count - 1 - end

            def load_from_end():
                after = service.key_at(skip - 1, query, reverse) if skip > 0 else None
                if skip > 0 and after is None:
                    return [], None
                page = service.list(query, reverse, after=after, limit=end - start + 1)
                items = list(reversed(page.items))
                return items, (page.first_key if page.items else None)

            self._reader.submit(key, load_from_end)
            return

        def load():
            if page_index == 0:
                after = None
            elif previous_key is not None:
                after = previous_key
            else:
                after = service.key_at(start - 1, query, sort)
                if after is None:
                    return [], None
            page = service.list(query, sort, after=after, limit=size)
            return list(page.items), page.last_key

        self._reader.submit(key, load)

    def _on_loaded(self, key, result) -> None:
        if key[1] != self._generation:
            return  # an answer to a question nobody asks any more
        if key[0] == "count":
            self._apply_count(int(result))
            return
        page_index = key[2]
        items, last_key = result
        if not self._count_known and page_index == 0 and self._count == 0 and items:
            # provisional rows until the count arrives; the count then adds the rest below them
            self.beginInsertRows(QModelIndex(), 0, len(items) - 1)
            self._count = len(items)
            self.endInsertRows()
        self._pages[page_index] = items
        self._pages.move_to_end(page_index)
        self._stale.pop(page_index, None)
        if last_key is not None:
            self._last_keys[page_index] = last_key
        while len(self._pages) > self._max_pages:
            old, _ = self._pages.popitem(last=False)
            self._last_keys.pop(old, None)
        first = page_index * self.page_size
        last = min(self._count, first + self.page_size) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(self._columns) - 1))

    def _apply_count(self, count: int) -> None:
        old = self._count
        was_known = self._count_known
        self._count_known = True
        if count > old:
            self.beginInsertRows(QModelIndex(), old, count - 1)
            self._count = count
            self.endInsertRows()
        elif count < old:
            self.beginRemoveRows(QModelIndex(), count, old - 1)
            self._count = count
            self.endRemoveRows()
        if was_known and old and count:
            # rows already on screen may have changed: ask again (their stale text stays meanwhile)
            self.dataChanged.emit(self.index(0, 0), self.index(self._count - 1, len(self._columns) - 1))
        self.countChanged.emit(self._count)

    def _on_failed(self, key, message: str) -> None:
        if key[1] == self._generation:
            self.loadFailed.emit(message)
