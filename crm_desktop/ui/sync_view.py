"""The Qt side of sync: status bar indicator, F5 / Sync button, Conflicts view, Sync problems list.

:class:`SyncController` runs the Qt-free :class:`~crm_desktop.sync.worker.SyncWorker`
(its own threads; the UI thread never waits for the network or for a sync
transaction) and re-emits each :class:`SyncStatus` on the UI thread.
:class:`SyncPage` lists conflicts (each field with mine / theirs / base; keep
mine or take theirs) and problems (the server's reason; resend or discard).
Resolving runs a short local transaction through :mod:`crm_desktop.sync.resolve`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

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
from crm_desktop.ui.resources import icon

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
        super().__init__(parent, objectName="SyncStatus")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.icon = QLabel()
        self.label = QPushButton(flat=True, objectName="SyncLabel")
        self.label.setCursor(Qt.CursorShape.PointingHandCursor)
        self.label.setToolTip("Show conflicts and sync problems")
        self.label.clicked.connect(self.details_requested)
        self.progress = QProgressBar(maximumWidth=110, maximumHeight=12, textVisible=False)
        self.progress.hide()
        self.button = QPushButton(icon("cloud"), "Sync", objectName="SyncButton")
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


class ConflictsView(QWidget):
    """Each conflict with its fields: mine, theirs, base. Keep mine / Take theirs."""

    changed = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        intro = QLabel("Someone changed the same field on the server while you edited it here. "
                       "For each record choose whose value stays; nothing is lost until you choose.",
                       wordWrap=True, objectName="Hint")
        layout.addWidget(intro)
        self.stack = QStackedWidget()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Record / field", "Mine", "Theirs (server)", "Before (base)"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setStyleSheet(_TREE_STYLE)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.empty = QLabel("No conflicts. Edits made here and on the server were merged field by field.",
                            alignment=Qt.AlignmentFlag.AlignCenter, objectName="EmptyState", wordWrap=True)
        self.stack.addWidget(self.tree)
        self.stack.addWidget(self.empty)
        layout.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.keep = QPushButton("Keep mine")
        self.keep.setToolTip("Send your value again, on top of the server's")
        self.take = QPushButton("Take theirs")
        self.take.setToolTip("Drop your change and keep the server's value")
        self.keep.clicked.connect(lambda: self._resolve(resolve.keep_mine))
        self.take.clicked.connect(lambda: self._resolve(resolve.take_theirs))
        buttons.addWidget(self.keep)
        buttons.addWidget(self.take)
        layout.addLayout(buttons)
        self.reload()

    def reload(self) -> None:
        self.tree.clear()
        items = resolve.conflicts(self.services.db)
        for conflict in items:
            top = QTreeWidgetItem([f"{conflict.entity.capitalize()}: {conflict.title}",
                                   "", "", KINDS.get(conflict.kind, conflict.kind)])
            top.setData(0, Qt.ItemDataRole.UserRole, conflict.id)
            font = top.font(0)
            font.setBold(True)
            top.setFont(0, font)
            if conflict.kind == "fields":
                for f in conflict.fields:
                    child = QTreeWidgetItem([_label(f["field"]), _show(f["mine"]), _show(f["theirs"]),
                                             _show(f["base"])])
                    child.setData(0, Qt.ItemDataRole.UserRole, conflict.id)
                    top.addChild(child)
            elif conflict.kind == "deleted":
                top.addChild(QTreeWidgetItem(["Record", "your edits", "deleted", ""]))
            else:
                top.addChild(QTreeWidgetItem(["Record", "deleted", "changed", ""]))
            for i in range(top.childCount()):
                top.child(i).setData(0, Qt.ItemDataRole.UserRole, conflict.id)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        self.stack.setCurrentWidget(self.tree if items else self.empty)
        if items:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._selection_changed()

    def _selected(self) -> int | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _selection_changed(self) -> None:
        enabled = self._selected() is not None
        self.keep.setEnabled(enabled)
        self.take.setEnabled(enabled)

    def _resolve(self, action) -> None:
        conflict_id = self._selected()
        if conflict_id is None:
            return
        try:
            action(self.services, conflict_id)
        except Exception as exc:
            log.exception("resolving conflict %s failed", conflict_id)
            QMessageBox.warning(self, "Conflict", f"Could not resolve it: {exc}")
        self.reload()
        self.changed.emit()


class ProblemsView(QWidget):
    """Changes the server refused, with its reason. Resend (after fixing) or Discard."""

    changed = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(QLabel("The server refused these changes. They do not hold up your other changes. "
                                "Fix the record and resend, or discard the change to get the server's version "
                                "back.", wordWrap=True, objectName="Hint"))
        self.stack = QStackedWidget()
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Record", "Change", "Reason", "What the server said"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setStyleSheet(_TREE_STYLE)
        header = self.tree.header()
        for column in (0, 1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.empty = QLabel("No sync problems. Every change you made was accepted by the server.",
                            alignment=Qt.AlignmentFlag.AlignCenter, objectName="EmptyState", wordWrap=True)
        self.stack.addWidget(self.tree)
        self.stack.addWidget(self.empty)
        layout.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.resend = QPushButton("Resend")
        self.resend.setToolTip("Send the change again with the record's current values")
        self.discard = QPushButton("Discard")
        self.discard.setToolTip("Drop the change; the record goes back to the server's version")
        self.resend.clicked.connect(lambda: self._act(resolve.resend))
        self.discard.clicked.connect(lambda: self._act(resolve.discard))
        buttons.addWidget(self.resend)
        buttons.addWidget(self.discard)
        layout.addLayout(buttons)
        self.reload()

    def reload(self) -> None:
        self.tree.clear()
        with self.services.db.read_connection() as c:
            conn = c.connection.driver_connection
            entries = resolve.outbox.problems(conn)
            titles = {e.mutation_id: resolve.record_title(conn, e.entity, e.record_id) for e in entries}
        for entry in entries:
            change = entry.op if entry.op != "update" else "edit " + ", ".join(sorted(entry.fields))
            item = QTreeWidgetItem([f"{entry.entity.capitalize()}: {titles[entry.mutation_id]}", change,
                                    REASONS.get(entry.reason or "", entry.reason or ""), entry.message or ""])
            item.setToolTip(3, entry.message or "")
            item.setData(0, Qt.ItemDataRole.UserRole, entry.mutation_id)
            self.tree.addTopLevelItem(item)
        self.stack.setCurrentWidget(self.tree if entries else self.empty)
        if entries:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._selection_changed()

    def _selected(self) -> int | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def _selection_changed(self) -> None:
        enabled = self._selected() is not None
        self.resend.setEnabled(enabled)
        self.discard.setEnabled(enabled)

    def _act(self, action) -> None:
        mutation_id = self._selected()
        if mutation_id is None:
            return
        try:
            action(self.services, mutation_id)
        except Exception as exc:
            log.exception("sync problem %s: %s failed", mutation_id, action.__name__)
            QMessageBox.warning(self, "Sync problem", f"That did not work: {exc}")
        self.reload()
        self.changed.emit()


class SyncPage(QTabWidget):
    """The Sync page: Conflicts and Sync problems, with counts in the tab titles."""

    changed = Signal()

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent, objectName="Page")
        self.setDocumentMode(True)
        self.conflicts = ConflictsView(services)
        self.problems = ProblemsView(services)
        self.addTab(self.conflicts, icon("warning"), "Conflicts")
        self.addTab(self.problems, icon("cloud-off"), "Sync problems")
        self.conflicts.changed.connect(self._changed)
        self.problems.changed.connect(self._changed)
        self._titles()

    def reload(self) -> None:
        self.conflicts.reload()
        self.problems.reload()
        self._titles()

    def _changed(self) -> None:
        self._titles()
        self.changed.emit()

    def _titles(self) -> None:
        n = self.conflicts.tree.topLevelItemCount()
        m = self.problems.tree.topLevelItemCount()
        self.setTabText(0, f"Conflicts ({n})" if n else "Conflicts")
        self.setTabText(1, f"Sync problems ({m})" if m else "Sync problems")


def attach_sync(window, core, *, start: bool = True, interval: float = 300.0) -> SyncController:
    """Wire sync into the main window: status bar, F5 and the Sync button, the Sync page."""
    from crm_desktop.plugin_host.distribution import PluginSync
    from crm_desktop.sync.service import SyncService

    service = SyncService(core.db, home=core.home, plugin_sync=PluginSync)  # published plugins install on sync
    controller = SyncController(service, window, interval=interval)
    widget = SyncStatusWidget()
    window.statusBar().addPermanentWidget(widget)
    window.sync_icon.hide()
    window.sync_label.hide()
    page = SyncPage(core.services)
    window._add_core_page("sync", page, "Sync", "cloud")
    widget.sync_requested.connect(controller.sync_now)
    widget.details_requested.connect(lambda: (page.reload(), window.show_page("sync")))
    QShortcut(QKeySequence("F5"), window, activated=controller.sync_now)
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
