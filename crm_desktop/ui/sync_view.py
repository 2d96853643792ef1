"""The Qt side of sync: status bar indicator, F5 / Sync button, Conflicts view, Sync problems list.

:class:`SyncController` runs the Qt-free :class:`~crm_desktop.sync.worker.SyncWorker`
(its own threads; the UI thread never waits for the network or for a sync
transaction) and re-emits each :class:`SyncStatus` on the UI thread.
:class:`SyncPage` holds two :class:`SyncListPane` s, one class configured by a
:class:`PaneSpec`: conflicts (each field with mine / theirs / base; keep mine or
take theirs) and problems (the server's reason; resend or discard). Each pane
reads its list on the window's executor (reader) and resolves on its writer
through :mod:`crm_desktop.sync.resolve`; the GUI thread only draws plain rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.sync import resolve
from crm_desktop.sync.worker import SyncStatus, SyncWorker
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

REASONS = {"validation": "Invalid value", "permission": "Not allowed", "scope": "Outside your team",
           "unknown_record": "Unknown on the server"}
KINDS = {"fields": "Both changed", "deleted": "Deleted on the server", "edited": "Changed on the server"}


def status_text(status: SyncStatus) -> tuple[str, bool | None]:
    """The status bar's words and its online flag (None: attention needed)."""
    extras = []
    if status.pending:
        extras.append(f"{status.pending} pending")
    if status.conflicts:
        extras.append(f"{status.conflicts} conflict{'s' if status.conflicts != 1 else ''}")
    if status.problems:
        extras.append(f"{status.problems} problem{'s' if status.problems != 1 else ''}")
    tail = (" · " + " · ".join(extras)) if extras else ""
    if status.state == "syncing":
        what = "Sending" if status.phase == "push" else "Receiving"
        count = f" {status.done}" + (f"/{status.total}" if status.total else "") if status.done else ""
        return f"Syncing… {what}{count}{tail}", True
    if status.state == "offline":
        return f"Offline · changes are saved on this computer{tail}", False
    if status.state == "signed_out":
        return f"Not signed in · crm-desktop login{tail}", False
    if status.state == "error":
        return f"Sync failed: {status.message[:80]}{tail}", None
    when = _short_time(status.last_synced) if status.last_synced else "never"
    attention = None if (status.conflicts or status.problems) else True
    return f"Synced {when}{tail}", attention


def _short_time(iso: str) -> str:
    from datetime import datetime

    try:
        return "at " + datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:
        return iso


class SyncController(QObject):
    """The worker's status on the UI thread, and the commands the UI gives it."""

    status_changed = Signal(object)  # SyncStatus
    synced = Signal(object)  # SyncStatus after a sync that received changes

    def __init__(self, service, parent: QObject | None = None, *, interval: float = 300.0, listen: bool = True):
        super().__init__(parent)
        self.service = service
        self.worker = SyncWorker(service, on_status=self.status_changed.emit, interval=interval, listen=listen)
        self.status_changed.connect(self._forward)

    def start(self) -> "SyncController":
        self.worker.start()
        return self

    def sync_now(self) -> None:
        self.worker.request_sync()

    def stop(self) -> None:
        self.worker.stop()

    def _forward(self, status: SyncStatus) -> None:
        if status.state == "idle" and status.report is not None and (status.report.pulled or status.report.conflicts):
            self.synced.emit(status)


class SyncStatusWidget(QFrame):
    """Icon, words, a progress bar while syncing, and the Sync button (F5)."""

    sync_requested = Signal()
    details_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SyncStatus")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.label = named(QPushButton(flat=True), "SyncLabel")
        self.label.setCursor(Qt.CursorShape.PointingHandCursor)
        self.label.setToolTip("Show conflicts and sync problems")
        self.label.clicked.connect(self.details_requested)
        self.progress = QProgressBar(textVisible=False)
        self.progress.setMaximumWidth(110)
        self.progress.setMaximumHeight(12)
        self.progress.hide()
        self.button = named(QPushButton(icon("cloud"), "Sync"), "SyncButton")
        self.button.setToolTip("Send your changes and receive your team's (F5)")
        self.button.clicked.connect(self.sync_requested)
        for w in (self.icon, self.label, self.progress, self.button):
            layout.addWidget(w)

    def show_status(self, status: SyncStatus) -> None:
        text, online = status_text(status)
        colour = {True: "#2fa36b", False: "#8a93a6", None: "#e0a526"}[online]
        self.icon.setPixmap(icon("cloud" if online is not False else "cloud-off", colour, 16).pixmap(16, 16))
        self.label.setText(text)
        syncing = status.state == "syncing"
        self.progress.setVisible(syncing)
        if syncing:
            if status.total:
                self.progress.setRange(0, status.total)
                self.progress.setValue(min(status.done, status.total))
            else:
                self.progress.setRange(0, 0)  # busy
        self.button.setEnabled(not syncing and status.state != "signed_out")


_TREE_STYLE = "QTreeWidget::item { padding: 5px 4px; }"


def _label(field: str) -> str:
    return field.replace("_id", "").replace("_", " ").capitalize()


def _show(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


@dataclass(frozen=True)
class PaneRow:
    """One top-level row of a :class:`SyncListPane` as plain data (made on the reader)."""

    key: int  # what the pane's actions get: a conflict id or an outbox mutation id
    cells: tuple[str, ...]
    children: tuple[tuple[str, ...], ...] = ()
    tooltip: str = ""


@dataclass(frozen=True)
class PaneAction:
    """A button under the list: ``run(services, key)`` on the writer, then the list reloads."""

    attr: str  # the pane's attribute for the button (``pane.keep``)
    text: str
    tooltip: str
    run: Callable[[Any, int], Any]
    failure: str  # the warning's first words: "Could not resolve it"


@dataclass(frozen=True)
class PaneSpec:
    """What makes a pane the Conflicts pane or the Sync problems pane."""

    what: str  # "conflicts", "sync problems": in messages
    intro: str
    headers: tuple[str, ...]
    stretch: tuple[int, ...]  # columns that take the spare width (the others fit their contents)
    nested: bool  # rows have child rows (fields)
    empty: str
    load: Callable[[Any], list[PaneRow]]
    actions: tuple[PaneAction, ...]
    title: str  # the warning box's title


def load_conflicts(services) -> list[PaneRow]:
    """Every open conflict with its fields (mine, theirs, base); runs on the reader."""
    rows = []
    for conflict in resolve.conflicts(services.db):
        if conflict.kind == "fields":
            children = tuple((_label(f["field"]), _show(f["mine"]), _show(f["theirs"]), _show(f["base"]))
                             for f in conflict.fields)
        elif conflict.kind == "deleted":
            children = (("Record", "your edits", "deleted", ""),)
        else:
            children = (("Record", "deleted", "changed", ""),)
        rows.append(PaneRow(conflict.id, (f"{conflict.entity.capitalize()}: {conflict.title}", "", "",
                                          KINDS.get(conflict.kind, conflict.kind)), children))
    return rows


def load_problems(services) -> list[PaneRow]:
    """Every change the server refused, with its reason; runs on the reader."""
    with services.db.read_connection() as c:
        conn = c.connection.driver_connection
        entries = resolve.outbox.problems(conn)
        titles = {e.mutation_id: resolve.record_title(conn, e.entity, e.record_id) for e in entries}
    rows = []
    for entry in entries:
        change = entry.op if entry.op != "update" else "edit " + ", ".join(sorted(entry.fields))
        rows.append(PaneRow(entry.mutation_id, (f"{entry.entity.capitalize()}: {titles[entry.mutation_id]}", change,
                                                REASONS.get(entry.reason or "", entry.reason or ""),
                                                entry.message or ""), tooltip=entry.message or ""))
    return rows


CONFLICTS = PaneSpec(
    what="conflicts",
    intro="Someone changed the same field on the server while you edited it here. "
          "For each record choose whose value stays; nothing is lost until you choose.",
    headers=("Record / field", "Mine", "Theirs (server)", "Before (base)"), stretch=(1, 2, 3), nested=True,
    empty="No conflicts. Edits made here and on the server were merged field by field.",
    load=load_conflicts, title="Conflict",
    actions=(PaneAction("keep", "Keep mine", "Send your value again, on top of the server's",
                        lambda services, key: resolve.keep_mine(services, key), "Could not resolve it"),
             PaneAction("take", "Take theirs", "Drop your change and keep the server's value",
                        lambda services, key: resolve.take_theirs(services, key), "Could not resolve it")))

PROBLEMS = PaneSpec(
    what="sync problems",
    intro="The server refused these changes. They do not hold up your other changes. "
          "Fix the record and resend, or discard the change to get the server's version back.",
    headers=("Record", "Change", "Reason", "What the server said"), stretch=(3,), nested=False,
    empty="No sync problems. Every change you made was accepted by the server.",
    load=load_problems, title="Sync problem",
    actions=(PaneAction("resend", "Resend", "Send the change again with the record's current values",
                        lambda services, key: resolve.resend(services, key), "That did not work"),
             PaneAction("discard", "Discard", "Drop the change; the record goes back to the server's version",
                        lambda services, key: resolve.discard(services, key), "That did not work")))


class SyncListPane(QWidget):
    """A list of conflicts or sync problems (``spec``) with its two buttons.

    The list is read on the executor's reader and its actions run on the writer; meanwhile it
    shows "Loading…" (first load), and afterwards the rows, the empty state or the error in
    one sentence. ``count`` is the number of rows shown (None until the first answer);
    ``loaded()`` after each answer, ``changed()`` after an action changed something.
    """

    changed = Signal()
    loaded = Signal()

    def __init__(self, spec: PaneSpec, services, *, executor=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self.services = services
        self._executor = executor if executor is not None else InlineExecutor()
        self.count: int | None = None
        self.busy = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(named(QLabel(spec.intro, wordWrap=True), "Hint"))
        self.stack = QStackedWidget()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(spec.headers))
        self.tree.setHeaderLabels(list(spec.headers))
        self.tree.setRootIsDecorated(spec.nested)
        self.tree.setAlternatingRowColors(True)
        self.tree.setStyleSheet(_TREE_STYLE)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        for column in range(len(spec.headers)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if column in spec.stretch
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.empty = self._state_label(spec.empty)
        self.loading = self._state_label(f"Loading {spec.what}…")
        self.error = self._state_label("")
        self.error.setProperty("error", True)
        for widget in (self.tree, self.empty, self.loading, self.error):
            self.stack.addWidget(widget)
        self.stack.setCurrentWidget(self.loading)
        layout.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.buttons: list[QPushButton] = []
        for action in spec.actions:
            button = QPushButton(action.text)
            button.setToolTip(action.tooltip)
            button.clicked.connect(lambda _checked=False, a=action: self._act(a))
            setattr(self, action.attr, button)
            self.buttons.append(button)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self._selection_changed()
        self.reload()

    @staticmethod
    def _state_label(text: str) -> QLabel:
        return named(QLabel(text, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True), "EmptyState")

    def reload(self) -> None:
        """Read the list again (on the reader); the rows on screen stay until the answer."""
        if self.count is None:
            self.stack.setCurrentWidget(self.loading)
        load, services = self.spec.load, self.services
        self._executor.read(lambda: load(services), done=self._show_rows, failed=self._show_error, context=self,
                            key=("sync-pane", self.spec.what, id(self)), label=f"load {self.spec.what}")

    def _show_rows(self, rows: list[PaneRow]) -> None:
        selected = self._selected()
        self.tree.clear()
        for row in rows:
            top = QTreeWidgetItem(list(row.cells))
            top.setData(0, Qt.ItemDataRole.UserRole, row.key)
            if row.tooltip:
                top.setToolTip(len(row.cells) - 1, row.tooltip)
            if self.spec.nested:
                font = top.font(0)
                font.setBold(True)
                top.setFont(0, font)
            for cells in row.children:
                child = QTreeWidgetItem(list(cells))
                child.setData(0, Qt.ItemDataRole.UserRole, row.key)
                top.addChild(child)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        self.count = len(rows)
        self.stack.setCurrentWidget(self.tree if rows else self.empty)
        keys = [row.key for row in rows]
        if rows:
            current = self.tree.topLevelItem(keys.index(selected) if selected in keys else 0)
            if current is not None:  # (one top-level item per row)
                self.tree.setCurrentItem(current)
        self._selection_changed()
        self.loaded.emit()

    def _show_error(self, exc: BaseException) -> None:
        log.warning("loading %s failed: %s", self.spec.what, exc)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.error.setText(f"Could not read the {self.spec.what}: {first_line}")
        self.tree.clear()
        self.count = 0
        self.stack.setCurrentWidget(self.error)
        self._selection_changed()
        self.loaded.emit()

    def _selected(self) -> int | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _selection_changed(self) -> None:
        enabled = self._selected() is not None and not self.busy
        for button in self.buttons:
            button.setEnabled(enabled)

    def _act(self, action: PaneAction) -> None:
        key = self._selected()
        if key is None or self.busy:
            return
        self.busy = True
        self._selection_changed()
        services = self.services

        def finished(_result: Any = None) -> None:
            self.busy = False
            self.reload()
            self.changed.emit()

        def failed(exc: BaseException) -> None:
            log.warning("%s %s: %s failed: %s", self.spec.what, key, action.text, exc)
            QMessageBox.warning(self, self.spec.title, f"{action.failure}: {exc}")
            finished()

        self._executor.write(lambda: action.run(services, key), done=finished, failed=failed, context=self,
                             label=f"{action.text} ({self.spec.what} {key})")


class SyncPage(QTabWidget):
    """The Sync page: Conflicts and Sync problems, with counts in the tab titles."""

    changed = Signal()

    def __init__(self, services, parent: QWidget | None = None, *, executor=None):
        super().__init__(parent)
        self.setObjectName("Page")
        self.setDocumentMode(True)
        self.conflicts = SyncListPane(CONFLICTS, services, executor=executor)
        self.problems = SyncListPane(PROBLEMS, services, executor=executor)
        self.addTab(self.conflicts, icon("warning"), "Conflicts")
        self.addTab(self.problems, icon("cloud-off"), "Sync problems")
        for pane in (self.conflicts, self.problems):
            pane.changed.connect(self._changed)
            pane.loaded.connect(self._titles)
        self._titles()

    def reload(self) -> None:
        self.conflicts.reload()
        self.problems.reload()

    def _changed(self) -> None:
        self.changed.emit()

    def _titles(self) -> None:
        n, m = self.conflicts.count, self.problems.count
        self.setTabText(0, f"Conflicts ({n})" if n else "Conflicts")
        self.setTabText(1, f"Sync problems ({m})" if m else "Sync problems")


def attach_sync(window, core, *, start: bool = True, interval: float = 300.0) -> SyncController:
    """Wire sync into the main window: status bar, F5 and the Sync button, the Sync page."""
    from crm_desktop.plugin_host.distribution import PluginSync
    from crm_desktop.sync.service import SyncService

    # published plugins install on sync; each sync publishes sync.finished on the app's bus
    service = SyncService(core.db, home=core.home, plugin_sync=PluginSync, events=core.events)
    controller = SyncController(service, window, interval=interval)
    widget = SyncStatusWidget()
    window.statusBar().addPermanentWidget(widget)
    window.sync_icon.hide()
    window.sync_label.hide()
    page = SyncPage(core.services, executor=getattr(window, "executor", None))
    window._add_core_page("sync", page, "Sync", "cloud")
    widget.sync_requested.connect(controller.sync_now)

    def show_details() -> None:
        page.reload()
        window.show_page("sync")

    widget.details_requested.connect(show_details)
    QShortcut(QKeySequence("F5"), window).activated.connect(controller.sync_now)
    window.menu("Tools").addAction(icon("cloud"), "Sync now\tF5", controller.sync_now)
    controller.status_changed.connect(widget.show_status)

    def after_status(status: SyncStatus) -> None:
        if status.state in ("idle", "error", "offline"):
            page.reload()
        plugins = status.report.plugins if status.report is not None else None
        host = getattr(window, "_plugin_host", None)
        if status.state == "idle" and plugins and host is not None:
            # the sync installed files only; the host loads them here, live (the admin panel refreshes)
            from crm_desktop.plugin_host.distribution import apply_to_host

            for problem in apply_to_host(host, plugins):
                window.show_status(f"Plugin from the server: {problem}", 10000)

    controller.status_changed.connect(after_status)
    controller.synced.connect(lambda _s: window.refresh_all())
    page.changed.connect(controller.sync_now)
    widget.show_status(controller.worker.status)
    window._sync = (controller, widget, page)
    if start:
        controller.start()
    return controller
