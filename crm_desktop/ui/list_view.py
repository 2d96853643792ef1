"""An entity's page: filter bar, a paged table, and the detail panel beside it."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu, QPushButton, QSplitter,
    QTableView, QVBoxLayout, QWidget,
)

from crm_desktop.services.paging import ListQuery
from crm_desktop.ui.detail_panel import DetailPanel
from crm_desktop.ui.entities import EntitySpec
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.paged_model import PagedTableModel
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

ROW_HEIGHT = 30


class EntityListView(QWidget):
    """Browse, filter and edit one entity. ``changed()`` after the user changed data here;
    ``status(text)`` for the window's status bar."""

    changed = Signal()
    open_record = Signal(str, str)
    status = Signal(str)

    def __init__(self, spec: EntitySpec, services, *, settings: QSettings | None = None,
                 record_actions: Callable[[str, list[str], QMenu], None] | None = None,
                 executor=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Page")
        self.spec = spec
        self._services = services
        self._settings = settings
        self._record_actions = record_actions
        self.service = services.entity_service(spec.entity)
        self._executor = executor if executor is not None else InlineExecutor()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)

        bar = QHBoxLayout()
        bar.setSpacing(8)
        self.filter_text = QLineEdit(placeholderText=f"Filter {spec.title.lower()}…", clearButtonEnabled=True)
        self.filter_text.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.filter_text.setMinimumWidth(170)
        bar.addWidget(self.filter_text)
        self.filter_combos: dict[str, QComboBox] = {}
        for name in spec.filters:
            combo = named(QComboBox(), f"filter_{name}")
            combo.setMinimumWidth(110)
            self.filter_combos[name] = combo
            bar.addWidget(combo)
        self._fill_filters()
        bar.addStretch(1)
        self.count_label = named(QLabel(), "Muted")
        bar.addWidget(self.count_label)
        self.new_button = QPushButton(icon("plus", "#ffffff"), f"New {spec.singular.lower()}")
        self.new_button.setProperty("primary", True)
        self.new_button.clicked.connect(self.new_record)
        bar.addWidget(self.new_button)
        layout.addLayout(bar)

        self.model = PagedTableModel(self.service, list(spec.columns), start=False, parent=self)
        self.model.countChanged.connect(self._show_count)
        self.table = named(QTableView(), f"{spec.plural}_table")
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        vertical = self.table.verticalHeader()
        vertical.hide()
        # fixed heights: the view never measures a million rows
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(ROW_HEIGHT)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for i, column in enumerate(spec.columns):
            self.table.setColumnWidth(i, column.width)
        self.table.setSortingEnabled(True)
        header.setSortIndicator(max(0, self.model.sort_column()), Qt.SortOrder.AscendingOrder)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)

        self._reverting = False
        self.detail = DetailPanel(spec, services, record_actions=record_actions, executor=executor)
        self.detail.changed.connect(self._detail_changed)
        self.detail.status.connect(self.status)
        self.detail.open_record.connect(self.open_record)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([760, 460])
        layout.addWidget(self.splitter, 1)

        self._filter_timer = QTimer(self, singleShot=True, interval=180)
        self._filter_timer.timeout.connect(self.apply_filters)
        self.filter_text.textChanged.connect(lambda *_: self._filter_timer.start())
        for combo in self.filter_combos.values():
            combo.currentIndexChanged.connect(lambda *_: self.apply_filters())
        self.restore_layout()

    # -- filters -------------------------------------------------------------------------

    def _fill_filters(self) -> None:
        """The filter choices: fixed ones now, tags, owners and stages from the reader."""
        s, wanted = self._services, [n for n in self.filter_combos if n in ("tag", "owner", "stage")]
        fixed = {name: [(choice.capitalize(), choice) for choice in self.spec.status_choices]
                 for name in self.filter_combos if name in ("status", "kind")}
        self._set_filter_choices(fixed)
        if not wanted:
            return

        def fetch() -> dict[str, list[tuple[str, str]]]:
            out: dict[str, list[tuple[str, str]]] = {}
            if "tag" in wanted:
                out["tag"] = [(t.name, t.name) for t in s.tags.all()]
            if "owner" in wanted:
                out["owner"] = [(u.display_name, u.id) for u in s.users.list(limit=500).items]
            if "stage" in wanted:
                out["stage"] = [(st.name, st.id) for p in s.pipelines.all() for st in s.pipelines.stages(p.id)]
            return out

        def failed(exc: BaseException) -> None:
            self.status.emit(f"The filter choices could not be loaded: {exc}")

        self._executor.read(fetch, done=self._set_filter_choices, failed=failed, context=self,
                            key=("filters", id(self)), label=f"filter choices of {self.spec.plural}")

    _FILTER_ALL = {"tag": "All tags", "owner": "Any owner", "stage": "All stages", "status": "Any status",
                   "kind": "All kinds"}

    def _set_filter_choices(self, choices: dict[str, list[tuple[str, str]]]) -> None:
        for name, items in choices.items():
            combo = self.filter_combos.get(name)
            if combo is None:
                continue
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(self._FILTER_ALL[name], None)
            for label, value in items:
                combo.addItem(label, value)
            combo.setCurrentIndex(max(0, combo.findData(current)))
            combo.blockSignals(False)

    def current_query(self) -> ListQuery:
        fields = {name: combo.currentData() for name, combo in self.filter_combos.items()}
        return ListQuery(text=self.filter_text.text().strip() or None, tag=fields.get("tag"),
                         owner_id=fields.get("owner"), stage_id=fields.get("stage"),
                         status=fields.get("status"), kind=fields.get("kind"))

    def apply_filters(self) -> None:
        """Filter in SQL by what the filter bar says now."""
        self.model.set_query(self.current_query())

    def showEvent(self, event) -> None:
        self.model.start()  # load when first on screen, not while the window opens
        super().showEvent(event)

    def _show_count(self, count: int) -> None:
        self.count_label.setText(f"{count:,} {self.spec.title.lower()}".replace(",", "\u2009"))

    # -- records ---------------------------------------------------------------------------

    def _row_changed(self, current, previous) -> None:
        if self._reverting:
            return
        record = self.model.record(current.row()) if current.isValid() else None
        if record is None:
            return
        shown = self.detail.record
        if shown is not None and shown.id == record.id:
            return
        record_id = record.id
        if not self.detail.confirm_leave(lambda: self.show_record_id(record_id)):
            self._select_row_quietly(previous)  # stay on the record with the unsaved edits
            return
        self.detail.show_record(record)  # the row's record at once; the fresh one from the reader
        self._fetch(record_id, lambda fresh: self._show_fresh(record_id, fresh))

    def _select_row_quietly(self, index) -> None:
        self._reverting = True
        try:
            selection = self.table.selectionModel()
            if index is not None and index.isValid():
                selection.setCurrentIndex(index, selection.SelectionFlag.ClearAndSelect
                                          | selection.SelectionFlag.Rows)
            else:
                selection.clear()
        finally:
            self._reverting = False

    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [r.id for r in (self.model.record(row) for row in rows) if r is not None]

    def new_record(self) -> None:
        if not self.detail.confirm_leave(self.new_record):
            return
        self._reverting = True
        self.table.clearSelection()
        self._reverting = False
        self.detail.show_record(None)
        first = self.detail.form.inputs[self.spec.form[0].name]
        first.setFocus()

    def show_record_id(self, record_id: str, *, missing: Callable[[], None] | None = None) -> bool:
        """Show a record in the detail panel (and select it if its row is loaded). The record is read
        on the reader; ``missing()`` runs if it no longer exists. Returns True (it was asked for)."""
        shown = self.detail.record
        if not (shown is not None and shown.id == record_id) and \
                not self.detail.confirm_leave(lambda: self.show_record_id(record_id, missing=missing)):
            return True  # the user stays with the unsaved edits (or it opens once they are saved)

        def found(record) -> None:
            if record is None:
                if missing is not None:
                    missing()
                else:
                    self.status.emit(f"That {self.spec.singular.lower()} no longer exists")
                return
            if self.detail.is_dirty() and (self.detail.record is None or self.detail.record.id != record_id):
                return  # edits were started meanwhile: they are not thrown away by a late answer
            self._reverting = True
            try:
                row = self.model.row_of(record_id)
                if row is not None:
                    self.table.selectRow(row)
            finally:
                self._reverting = False
            self.detail.show_record(record)

        self._fetch(record_id, found)
        return True

    def _fetch(self, record_id: str, done: Callable[[object], None]) -> None:
        service = self.service

        def failed(exc: BaseException) -> None:
            self.status.emit(f"Could not open the {self.spec.singular.lower()}: {exc}")

        self._executor.read(lambda: service.find(record_id), done=done, failed=failed, context=self,
                            key=("record", id(self)), label=f"open {self.spec.entity}")

    def _show_fresh(self, record_id: str, fresh) -> None:
        shown = self.detail.record
        if fresh is None or shown is None or shown.id != record_id or self.detail.is_dirty() or fresh == shown:
            return
        self.detail.show_record(fresh)

    def refresh(self) -> None:
        """Reload counts and visible rows (after an edit here or elsewhere)."""
        self.model.refresh(keep_rows=True)

    def _detail_changed(self) -> None:
        self.refresh()
        self._fill_filters()
        self.changed.emit()

    def _context_menu(self, pos) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction(icon("note"), "Open").triggered.connect(lambda: self.show_record_id(ids[0]))
        if self._record_actions is not None:
            self._record_actions(self.spec.entity, ids, menu)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # -- layout persistence -------------------------------------------------------------------

    def _key(self, what: str) -> str:
        return f"lists/{self.spec.plural}/{what}"

    def restore_layout(self) -> None:
        if self._settings is None:
            return
        header_state = self._settings.value(self._key("header"))
        if isinstance(header_state, QByteArray) and not header_state.isEmpty():
            self.table.horizontalHeader().restoreState(header_state)
        splitter_state = self._settings.value(self._key("splitter"))
        if isinstance(splitter_state, QByteArray) and not splitter_state.isEmpty():
            self.splitter.restoreState(splitter_state)

    def save_layout(self) -> None:
        if self._settings is None:
            return
        self._settings.setValue(self._key("header"), self.table.horizontalHeader().saveState())
        self._settings.setValue(self._key("splitter"), self.splitter.saveState())

    def close(self) -> bool:  # noqa: D102 - also stops the background reader
        self.model.close()
        return super().close()
