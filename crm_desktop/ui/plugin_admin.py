"""The plugin admin panel (the seed's ``PluginAdmin``): every plugin, its state, and what to do with it.

A table lists each plugin the host knows with a coloured state badge, version,
source, publisher key (the id of the key that signed the bundle it was
installed from, "first-party" for plugins shipped with the app, "unsigned"
otherwise), author and permissions; the pane under it shows the selected plugin's
description, folder and, for a failed plugin, the error with an expandable
traceback. The buttons call the host (enable, disable, reload, uninstall,
settings, install); the panel redraws when the host reports a change, so it
stays right whether the change came from here, the ``--dev`` watcher or a
failure at run time.

Dialogs that ask the user something are methods (:meth:`confirm`,
:meth:`ask_uninstall`, :meth:`choose_folder`, :meth:`choose_bundle`,
:meth:`approve_bundle`, :meth:`approve_folder`) so tests can answer them without a modal loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.plugin_host.bundle import InstallPlan, PlacedBundle, StagedBundle, stage_bundle
from crm_desktop.plugin_host.folder_install import FolderInstallPlan
from crm_desktop.plugin_host.installer import PreparedFolderInstall
from crm_desktop.plugin_host.lifecycle import PluginRecord, PluginState
from crm_desktop.plugin_host.manifest import read_manifest
from crm_desktop.ui.executor import is_locked_error
from crm_desktop.ui.plugins.adapter import state_name
from crm_desktop.ui.plugin_failures import summarize
from crm_desktop.ui.settings_form import SettingsDialog, schema_for

if TYPE_CHECKING:
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.plugins.seams import PluginManagerHost

log = logging.getLogger(__name__)

#: what an install shows for approval: a bundle's plan or a folder's
ApprovalPlan = InstallPlan | FolderInstallPlan

#: badge colours per state: (text, background)
STATE_COLORS: dict[str, tuple[str, str]] = {
    "active": ("#176b3a", "#daf3e3"),
    "disabled": ("#5b6473", "#e9ecf1"),
    "failed": ("#a61b1b", "#fde2e2"),
    "error": ("#a61b1b", "#fde2e2"),
    "incompatible": ("#8a5a00", "#fff1cc"),
    "blocked": ("#ffffff", "#6b2a86"),
}
_DEFAULT_COLORS = ("#2f4fb0", "#e6edff")

COLUMNS = ("Plugin", "Version", "State", "Source", "Publisher", "Author", "Permissions")
PUBLISHER_COLUMN = COLUMNS.index("Publisher")
_NAME_ROLE = Qt.ItemDataRole.UserRole + 1


class StateBadgeDelegate(QStyledItemDelegate):
    """Paints the State column as a rounded, coloured pill."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        fg, bg = STATE_COLORS.get(text, _DEFAULT_COLORS)
        font = QFont(option.font)
        font.setPointSizeF(max(7.5, font.pointSizeF() - 1))
        font.setBold(True)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(font)
        width = painter.fontMetrics().horizontalAdvance(text) + 16
        height = painter.fontMetrics().height() + 4
        rect = QRect(option.rect.left() + 6, option.rect.center().y() - height // 2 + 1, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(QColor(bg)))
        painter.drawRoundedRect(rect, height / 2, height / 2)
        painter.setPen(QPen(QColor(fg)))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width() + 24, max(size.height(), 26))


class BundleApprovalDialog(QDialog):
    """Shows what an install means (publisher, permissions, findings) and asks.

    ``plan`` is a bundle's ``InstallPlan`` or a folder's ``FolderInstallPlan``
    (which adds ``source`` and ``target`` and has no signature)."""

    def __init__(self, plan: ApprovalPlan, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("BundleApprovalDialog")
        self.setWindowTitle(f"Install {plan.name} {plan.version}?")
        signature = plan.signature if isinstance(plan, InstallPlan) else None
        trusted = bool(signature and signature.trusted)
        change = (f"update from {plan.previous_version}" if plan.previous_version else "new install")
        head = QLabel(f"<b>{plan.manifest.get('displayName', plan.name)}</b> {plan.version} "
                      f"<span style='color:#6b7385'>({plan.name}, {change})</span>")
        head.setObjectName("approvalTitle")
        publisher = QLabel(("✔ " if trusted else "⚠ ") + plan.publisher)
        publisher.setObjectName("approvalTrusted" if trusted else "approvalUntrusted")
        publisher.setWordWrap(True)
        publisher.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        perms = QLabel("<b>Permissions requested:</b> " + (", ".join(plan.permissions) or "none"))
        perms.setWordWrap(True)
        origin = QLabel(f"<b>From folder:</b> {_escape(str(plan.source))}<br><b>Into:</b> {_escape(str(plan.target))}"
                        if isinstance(plan, FolderInstallPlan) else f"<b>Bundle:</b> {_escape(str(plan.bundle))}")
        origin.setObjectName("approvalSource")
        origin.setWordWrap(True)
        origin.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        findings = list(plan.findings)
        text = "\n".join(str(f) for f in findings) or "No risky code found by the static checks."
        for warning in plan.warnings:
            text += f"\nwarning: {warning}"
        self.findings = QPlainTextEdit(text)
        self.findings.setReadOnly(True)
        self.findings.setObjectName("approvalFindings")
        self.findings.setMaximumHeight(140)
        caveat = QLabel("Plugins run inside the app with your rights. Install only what you trust: "
                        "the signature and the admin policy are the trust decision.")
        caveat.setWordWrap(True)
        caveat.setObjectName("muted")
        self.install_button = QPushButton("Install")
        self.install_button.setObjectName("primaryButton")
        self.install_button.clicked.connect(self.accept)
        cancel = QPushButton("Cancel")
        cancel.setDefault(True)  # the safe answer is the default
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.install_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        layout.setSpacing(8)
        for widget in (head, publisher, origin, perms, QLabel(f"<b>Static checks</b> ({len(findings)} finding(s))"),
                       self.findings, caveat):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        self.setStyleSheet(ADMIN_STYLE)
        self.resize(560, 380)


class PluginAdminPanel(QWidget):
    """Lists every plugin of ``host`` with its state; buttons enable, disable, reload, uninstall, configure, install."""

    #: emitted after every redraw (tests wait on it)
    refreshed = Signal()

    def __init__(self, host: PluginManagerHost, parent: QWidget | None = None, *,
                 executor: DataExecutor | None = None):
        super().__init__(parent)
        self.setObjectName("PluginAdminPanel")
        self.host = host
        # the window's DataExecutor: a plugin's migration (backup + integrity check) runs on its writer
        self._executor = executor
        self.busy = False
        self._names: list[str] = []

        title = QLabel("Plugins")
        title.setObjectName("adminTitle")
        self.summary = QLabel()
        self.summary.setObjectName("muted")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter plugins…")
        self.filter.setClearButtonEnabled(True)
        self.filter.setFixedWidth(220)
        self.filter.textChanged.connect(lambda _t: self.refresh())
        head = QHBoxLayout()
        head.addWidget(title)
        head.addSpacing(10)
        head.addWidget(self.summary, 1, Qt.AlignmentFlag.AlignBottom)
        head.addWidget(self.filter)

        self.enable_button = self._button("Enable", self.enable_selected, "Turn the plugin on now")
        self.disable_button = self._button("Disable", self.disable_selected, "Turn the plugin off and remove its menus and panels")
        self.reload_button = self._button("Reload", self.reload_selected, "Re-import the plugin's code without restarting")
        self.uninstall_button = self._button("Uninstall…", self.uninstall_selected, "Remove a plugin you installed")
        self.uninstall_button.setObjectName("dangerButton")
        self.settings_button = self._button("Settings…", self.open_settings, "Edit the plugin's settings")
        self.folder_button = self._button("Open folder", self.open_folder, "Show the plugin's files")
        self.install_folder_button = self._button("Install from folder…", self.install_from_folder,
                                                  "Copy a plugin folder into your plugins and start it")
        self.install_bundle_button = self._button("Install from bundle…", self.install_from_bundle,
                                                  "Verify a signed .crmplugin bundle, review it, and install it")
        self.install_bundle_button.setObjectName("primaryButton")
        bar = QHBoxLayout()
        bar.setSpacing(6)
        for button in (self.enable_button, self.disable_button, self.reload_button, self.settings_button,
                       self.folder_button, self.uninstall_button):
            bar.addWidget(button)
        bar.addStretch(1)
        bar.addWidget(self.install_folder_button)
        bar.addWidget(self.install_bundle_button)

        self.message = QLabel()
        self.message.setObjectName("adminMessage")
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("pluginTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(30)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, mode in enumerate((QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.ResizeToContents,
                                       QHeaderView.ResizeMode.Fixed, QHeaderView.ResizeMode.ResizeToContents,
                                       QHeaderView.ResizeMode.ResizeToContents,
                                       QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Stretch)):
            header.setSectionResizeMode(column, mode)
        self.table.setColumnWidth(2, 112)
        self.table.setItemDelegateForColumn(2, StateBadgeDelegate(self.table))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _i: self.open_settings())

        # details of the selected plugin
        self.detail_title = QLabel()
        self.detail_title.setObjectName("detailTitle")
        self.detail_text = QLabel()
        self.detail_text.setWordWrap(True)
        self.detail_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_text.setObjectName("detailText")
        self.error_summary = QLabel()
        self.error_summary.setObjectName("errorSummary")
        self.error_summary.setWordWrap(True)
        self.error_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.traceback_toggle = QToolButton()
        self.traceback_toggle.setText("Show traceback")
        self.traceback_toggle.setCheckable(True)
        self.traceback_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.traceback_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.traceback_toggle.toggled.connect(self._toggle_traceback)
        self.traceback = QPlainTextEdit()
        self.traceback.setObjectName("traceback")
        self.traceback.setReadOnly(True)
        self.traceback.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.traceback.setVisible(False)
        error_row = QHBoxLayout()
        error_row.addWidget(self.error_summary, 1)
        error_row.addWidget(self.traceback_toggle, 0, Qt.AlignmentFlag.AlignTop)
        self.error_box = QFrame()
        self.error_box.setObjectName("errorBox")
        error_layout = QVBoxLayout(self.error_box)
        error_layout.setContentsMargins(10, 8, 10, 8)
        error_layout.addLayout(error_row)
        error_layout.addWidget(self.traceback, 1)

        details = QFrame()
        details.setObjectName("detailsPane")
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(14, 10, 14, 10)
        details_layout.setSpacing(6)
        details_layout.addWidget(self.detail_title)
        details_layout.addWidget(self.detail_text)
        details_layout.addWidget(self.error_box, 1)
        details_layout.addStretch(0)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(10)
        layout.addLayout(head)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        self.setStyleSheet(ADMIN_STYLE)

        # the host may notify from inside its own calls: redraw once, after they return
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        unsubscribe = host.subscribe(self._on_host_event)
        self.destroyed.connect(lambda *_: _safe(unsubscribe))
        self._unsubscribe: Callable[[], None] | None = unsubscribe
        self.refresh()
        if self.table.rowCount():
            self.table.selectRow(0)

    # ------------------------------------------------------------------ building
    def _button(self, text: str, slot: Callable[[], Any], tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    def _on_host_event(self, _name: str, _what: str) -> None:
        self._refresh_timer.start()

    def refresh(self) -> None:
        """Redraw the table from ``host.records``, keeping the selection."""
        selected = self.selected_name()
        needle = self.filter.text().strip().lower()
        records = sorted(self.host.records.values(), key=lambda r: (r.display_name or r.name).lower())
        states = [state_name(r.state) for r in records]
        self.table.setRowCount(0)
        self._names = []
        for record in records:
            state = state_name(record.state)
            permissions = list(record.permissions)
            haystack = " ".join([record.name, record.display_name or "", record.author or "", state]).lower()
            if needle and needle not in haystack:
                continue
            row = self.table.rowCount()
            self.table.insertRow(row)
            name_item = QTableWidgetItem(f"{record.display_name or record.name}  ·  {record.name}")
            name_item.setData(_NAME_ROLE, record.name)
            name_item.setToolTip(record.description or record.name)
            publisher = publisher_of(record)
            cells = [name_item, QTableWidgetItem(str(record.version or "")), QTableWidgetItem(state),
                     QTableWidgetItem(record.source), QTableWidgetItem(publisher),
                     QTableWidgetItem(record.author or ""), QTableWidgetItem(", ".join(permissions) or "—")]
            cells[PUBLISHER_COLUMN].setToolTip(f"Publisher key: {publisher}")
            cells[-1].setToolTip("\n".join(permissions))
            if record.error:
                cells[2].setToolTip(summarize(record.error))
            for column, item in enumerate(cells):
                self.table.setItem(row, column, item)
            self._names.append(record.name)
        counts = {s: states.count(s) for s in dict.fromkeys(states)}
        parts = [f"{len(records)} installed"] + [f"{n} {s}" for s, n in counts.items()]
        self.summary.setText(" · ".join(parts))
        if selected in self._names:
            self.table.selectRow(self._names.index(selected))
        self._selection_changed()
        self.refreshed.emit()

    def selected_name(self) -> str | None:
        """The name of the selected plugin, or None."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.data(_NAME_ROLE) if item else None

    def select(self, name: str) -> None:
        """Select the row of ``name``."""
        if name in self._names:
            self.table.selectRow(self._names.index(name))

    def _selection_changed(self) -> None:
        name = self.selected_name()
        record = self.host.records.get(name) if name else None
        state = state_name(record.state) if record else ""
        self.enable_button.setEnabled(record is not None and state in {"disabled", "failed", "error"})
        self.disable_button.setEnabled(record is not None and state in {"active", "failed", "error", "incompatible"})
        self.reload_button.setEnabled(record is not None and state in {"active", "failed", "error"})
        self.uninstall_button.setEnabled(record is not None and record.source == "user")
        self.folder_button.setEnabled(record is not None)
        has_settings = False
        if record is not None:
            try:
                has_settings = bool(schema_for(self.host, record.name))
            except Exception:
                log.debug("no settings schema for %s", record.name, exc_info=True)
        self.settings_button.setEnabled(has_settings)
        if self.busy:  # the writer is working for the panel: one thing at a time
            for button in (self.enable_button, self.disable_button, self.reload_button, self.uninstall_button,
                           self.settings_button):
                button.setEnabled(False)
        if record is None:
            self.detail_title.setText("Select a plugin")
            self.detail_text.setText("")
            self.error_box.setVisible(False)
            return
        self.detail_title.setText(f"{record.display_name or record.name} <span style='color:#6b7385'>"
                                  f"{record.version} · {state}</span>")
        permissions = ", ".join(record.permissions) or "none"
        lines = [record.description or "<i>No description.</i>",
                 f"<b>Author:</b> {record.author or '—'} &nbsp; <b>Source:</b> {record.source} &nbsp; "
                 f"<b>Folder:</b> {record.path}",
                 f"<b>Publisher key:</b> {_escape(publisher_of(record))}",
                 f"<b>Permissions:</b> {permissions}"]
        self.detail_text.setText("<br>".join(lines))
        if record.error:
            self.error_box.setVisible(True)
            self.error_summary.setText(f"<b>{state.capitalize()}:</b> {_escape(summarize(record.error))}")
            self.traceback.setPlainText(record.error)
            self.traceback_toggle.setVisible("\n" in record.error.strip())
        else:
            self.error_box.setVisible(False)

    def _toggle_traceback(self, shown: bool) -> None:
        self.traceback.setVisible(shown)
        self.traceback_toggle.setText("Hide traceback" if shown else "Show traceback")
        self.traceback_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def show_message(self, text: str, *, error: bool = False) -> None:
        """A one-line note above the table (errors stay until the next action)."""
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------------ questions (tests answer these)
    def confirm(self, title: str, text: str) -> bool:
        """Ask yes/no."""
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def ask_uninstall(self, name: str) -> str | None:
        """``"keep"`` (keep settings and data), ``"drop"`` (delete them) or None (cancel)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Uninstall plugin",
                          f"Uninstall {name}? Its files are removed now.\n\n"
                          "Keep its settings and data, in case you install it again?", parent=self)
        keep = box.addButton("Uninstall, keep data", QMessageBox.ButtonRole.AcceptRole)
        drop = box.addButton("Uninstall and delete data", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        return "keep" if clicked is keep else "drop" if clicked is drop else None

    def choose_folder(self) -> str | None:
        """A plugin folder picked by the user, or None."""
        return QFileDialog.getExistingDirectory(self, "Install plugin from folder") or None

    def choose_bundle(self) -> str | None:
        """A ``.crmplugin`` file picked by the user, or None."""
        path, _ = QFileDialog.getOpenFileName(self, "Install plugin bundle", "", "Plugin bundles (*.crmplugin)")
        return path or None

    def approve_bundle(self, plan: InstallPlan) -> bool:
        """Show publisher, permissions and static-check findings; True to install."""
        return BundleApprovalDialog(plan, self).exec() == QDialog.DialogCode.Accepted

    def approve_folder(self, plan: FolderInstallPlan) -> bool:
        """Show what installing a folder would do (name, version, from/into, publisher, permissions,
        findings); True to install. Asked only after the host's rules allowed it."""
        return BundleApprovalDialog(plan, self).exec() == QDialog.DialogCode.Accepted

    def open_url(self, url: QUrl) -> bool:
        """Open a folder in the file manager."""
        return QDesktopServices.openUrl(url)

    # ------------------------------------------------------------------ actions
    def _act(self, verb: str, fn: Callable[[], Any], done: str | Callable[[], str]) -> bool:
        """Run a host call; show what happened (or why not) in the message strip."""
        try:
            fn()
        except Exception as exc:  # the host's errors name the plugin and the rule; show them as they are
            self._refused(verb, exc)
            return False
        self.show_message(done() if callable(done) else done)
        self.refresh()
        return True

    def _act_and_settle(self, verb: str, finish: Callable[[], Any], done: Callable[[], str],
                        settle: Callable[[], None] | None = None) -> None:
        """:meth:`_act` for a host call that loads a plugin: a plugin with synced models is activated
        only after the writer published its tables, so the panel stays busy until the host's loads
        are over, then ``settle()`` (may raise: the action failed) and the outcome ``done()`` are shown."""
        try:
            finish()
        except Exception as exc:
            self._refused(verb, exc)
            return

        def settled() -> None:
            if not isValid(self):
                return  # the panel was closed meanwhile
            self.set_busy(False)
            if settle is not None:
                try:
                    settle()
                except Exception as exc:
                    self._refused(verb, exc)
                    return
            self.show_message(done())
            self.refresh()

        if self.host.loading:
            self.set_busy(True)
            self.show_message(f"{verb}: publishing its synced tables…")
            self.host.after_loads(settled)
        else:
            settled()

    def _with_prepare(self, verb: str, prepare: Callable[[], Any] | None, busy: str,
                      finish: Callable[[], Any], done: Callable[[], str],
                      on_failure: Callable[[BaseException], None] | None = None,
                      settle: Callable[[], None] | None = None) -> None:
        """Run ``prepare()`` (the database and file work: migrations, dropping tables) on the
        executor's writer while the panel shows ``busy`` and its buttons are off, then ``finish()``
        (the host call that runs plugin code and builds Qt contributions) here, on the GUI thread,
        where the host expects it. Without an executor both run here, one after the other.
        ``on_failure(exc)`` undoes what a failed ``prepare`` left behind (here, on the GUI thread).
        ``settle()`` runs once the load ``finish`` started is over (see :meth:`_act_and_settle`)."""
        if self._executor is None or prepare is None:
            if prepare is not None:
                try:
                    prepare()
                except Exception as exc:
                    if on_failure is not None:
                        on_failure(exc)
                    self.show_message(f"{verb} failed: {exc}", error=True)
                    self.refresh()
                    return
            self._act_and_settle(verb, finish, done, settle)
            return
        self.set_busy(True)
        self.show_message(busy)

        def prepared(_result: Any) -> None:
            self.set_busy(False)
            self._act_and_settle(verb, finish, done, settle)

        def failed(exc: BaseException) -> None:
            self.set_busy(False)
            log.warning("%s failed: %s", verb, exc)
            if on_failure is not None:
                try:
                    on_failure(exc)
                except Exception:
                    log.exception("undoing the failed %s failed", verb)
            self.show_message(f"{verb} failed: {exc}", error=True)
            self.refresh()

        self._executor.write(prepare, done=prepared, failed=failed, context=self, label=verb)

    def set_busy(self, busy: bool) -> None:
        """While the writer works for the panel: every action button off (the table stays usable)."""
        self.busy = busy
        buttons = (self.enable_button, self.disable_button, self.reload_button, self.uninstall_button,
                   self.settings_button, self.install_folder_button, self.install_bundle_button)
        if busy:
            for button in buttons:
                button.setEnabled(False)
            self.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.unsetCursor()
            self.install_folder_button.setEnabled(True)
            self.install_bundle_button.setEnabled(True)
            self._selection_changed()

    def enable_selected(self) -> None:
        """Enable the selected plugin: its tables are migrated on the writer first."""
        name = self.selected_name()
        if not name:
            return
        self._with_prepare(f"Enabling {name}", lambda: self.host.migrate(name),
                           f"Enabling {name}: updating its tables…", lambda: self.host.enable(name),
                           lambda: self._outcome(name, "enabled"))

    def disable_selected(self) -> None:
        """Disable the selected plugin (after asking)."""
        name = self.selected_name()
        if name and self.confirm("Disable plugin", f"Disable {name}? Its menus and panels are removed now."):
            self._act(f"Disabling {name}", lambda: self.host.disable(name), f"{name} disabled.")

    def reload_selected(self) -> None:
        """Reload the selected plugin's code: the tables of the code now on disk are migrated on the writer."""
        name = self.selected_name()
        if not name:
            return
        self._with_prepare(f"Reloading {name}", lambda: self.host.migrate(name, reread=True),
                           f"Reloading {name}: updating its tables…", lambda: self.host.reload(name),
                           lambda: self._outcome(name, "reloaded"))

    def uninstall_selected(self) -> None:
        """Uninstall the selected plugin, asking whether to keep its data. Its code is unloaded and its
        files removed here; deleting its data (a backup, then dropping its tables) runs on the writer."""
        name = self.selected_name()
        if not name:
            return
        choice = self.ask_uninstall(name)
        if choice is None:
            return
        record = self.host.records.get(name)
        manifest = record.manifest if record is not None else None
        if choice == "keep" or self._executor is None or manifest is None:
            drop = choice == "drop"
            self._act(f"Uninstalling {name}", lambda: self.host.uninstall(name, drop_data=drop),
                      f"{name} uninstalled" + (" and its data deleted." if drop else "; its data was kept."))
            return
        if not self._act(f"Uninstalling {name}", lambda: self.host.uninstall(name, drop_data=False),
                         f"{name} uninstalled; deleting its data…"):
            return
        self.set_busy(True)

        def forgotten(_backup: Any) -> None:
            self.set_busy(False)
            self.show_message(f"{name} uninstalled and its data deleted.")

        def failed(exc: BaseException) -> None:
            self.set_busy(False)
            log.warning("deleting the data of plugin %s failed: %s", name, exc)
            self.show_message(f"{name} uninstalled, but deleting its data failed: {exc}", error=True)

        self._executor.write(lambda: self.host.forget_data(manifest), done=forgotten, failed=failed, context=self,
                             label=f"delete the data of plugin {name}")

    def _outcome(self, name: str, verb: str) -> str:
        record = self.host.records.get(name)
        state = state_name(record.state) if record else "gone"
        if state == "active":
            return f"{name} {verb}."
        return f"{name} is {state}: {summarize(record.error if record is not None else None)}"

    def open_settings(self) -> SettingsDialog | None:
        """Open the settings dialog generated from the selected plugin's schema."""
        name = self.selected_name()
        if not name or not self.settings_button.isEnabled():
            return None
        dialog = SettingsDialog(self.host, name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.show_message(f"Settings of {name} saved."))
        dialog.open()
        return dialog

    def open_folder(self) -> None:
        """Open the selected plugin's folder in the file manager."""
        name = self.selected_name()
        record = self.host.records.get(name) if name else None
        if record is not None and record.path:
            self.open_url(QUrl.fromLocalFile(str(record.path)))

    def install_from_folder(self) -> None:
        """Install a plugin folder the user picks: the host checks it like a bundle (policy, block list,
        no downgrade, requireSignature), then the user sees what would be installed and decides.

        The check and the question happen here; the copy and the plugin's migrations (database work)
        run on the executor's writer; loading its code and building its menus and pages come back
        here, on the GUI thread."""
        folder = self.choose_folder()
        if not folder:
            return
        name = Path(folder).name
        verb = f"Installing {name}"
        try:
            plan = self.host.plan_folder_install(Path(folder))
        except Exception as exc:  # refused: the host's error names the rule
            self._refused(verb, exc)
            return
        if not self.approve_folder(plan):
            self.show_message(f"Install of {name} cancelled; nothing changed.")
            return
        prepared: list[PreparedFolderInstall] = []

        def finish() -> None:
            try:
                self.host.finish_folder_install(prepared[0])
            finally:
                prepared[0].discard()  # a copy left over when putting it in place failed

        self._with_prepare(verb, lambda: prepared.append(self.host.prepare_folder_install(plan)),
                           f"{verb}: copying it and updating its tables…", finish,
                           lambda: self._installed(plan.name, name))

    def _installed(self, plugin: str, what: str) -> str:
        record = self.host.records.get(plugin)
        if record is None or record.state is PluginState.ACTIVE:
            return f"Installed {what}."
        return f"Installed {what}, but {plugin} is {state_name(record.state)}: {summarize(record.error)}"

    def _refused(self, verb: str, exc: BaseException) -> None:
        """An action failed: log it, say why in the panel (the host's errors name the plugin and the
        rule), and show the plugins as they are now."""
        log.warning("%s failed: %s", verb, exc)
        self.show_message(f"{verb} failed: {exc}", error=True)
        self.refresh()

    def _check_active(self, name: str) -> None:
        """Once its load is over: anything but an active plugin rolls a bundle install back."""
        record = self.host.records.get(name)
        if record is None or record.state is not PluginState.ACTIVE:
            state = state_name(record.state) if record is not None else "gone"
            raise RuntimeError(f"{name} installed but is {state}: "
                               f"{summarize(record.error if record is not None else None)}")

    def install_from_bundle(self) -> None:
        """Verify a bundle, show it for approval, and install it.

        Verifying (signature before the zip is opened) and the question happen here; moving it
        into place and migrating its tables run on the executor's writer; loading it (its menus
        and pages appear without a restart) comes back here. Anything but an active plugin at
        the end rolls the install back (the previous version, if any, is put back)."""
        path = self.choose_bundle()
        if not path:
            return
        name = Path(path).name
        verb = f"Installing {name}"
        try:
            staged = stage_bundle(path, self.host.home.plugins_dir, self.host.policy,
                                  manifest_validator=read_manifest)
        except Exception as exc:
            self._refused(verb, exc)
            return
        if not self.approve_bundle(staged.plan):
            staged.discard()
            self.show_message(f"Install of {name} cancelled; nothing changed.")
            return
        placed: list[PlacedBundle] = []

        def prepare(staged: StagedBundle = staged) -> None:
            if not placed:  # once: a write retried while an import holds the lock comes back here
                placed.append(staged.place())
            moved = placed[0]
            try:
                self.host.prepare_installed(moved.result.path)
            except Exception as exc:
                if is_locked_error(exc):
                    raise  # nothing was migrated; the writer waits for the lock and tries again
                raise moved.roll_back(exc) from exc

        def finish() -> None:
            # the bundle is in place: the host loads it (a plugin with synced models ends its load
            # after the writer published its tables: settle() then checks the outcome)
            moved = placed[0]
            try:
                self.host.activate_installed(Path(moved.result.path))
            except Exception as exc:
                raise moved.roll_back(exc) from exc

        def settle() -> None:
            moved = placed[0]
            try:
                self._check_active(moved.result.name)
            except Exception as exc:
                raise moved.roll_back(exc) from exc
            moved.finish()

        def undo(exc: BaseException) -> None:
            if placed:  # the writer gave up (e.g. the lock never came): put the previous version back
                placed[0].roll_back(exc)

        self._with_prepare(verb, prepare, f"{verb}: updating its tables…", finish,
                           lambda: f"Installed {name}.", on_failure=undo, settle=settle)


def publisher_of(record: PluginRecord) -> str:
    """The publisher key shown for a plugin record ("unsigned" when the host does not say)."""
    return record.publisher or "unsigned"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        log.debug("unsubscribe failed", exc_info=True)


ADMIN_STYLE = """
#PluginAdminPanel, #BundleApprovalDialog { background: #f4f6fa; }
#adminTitle { font-size: 18px; font-weight: 700; color: #1d2433; }
#muted { color: #6b7385; }
#pluginTable { background: white; alternate-background-color: #f8f9fc; border: 1px solid #dde2ea;
               border-radius: 6px; selection-background-color: #dbe7ff; selection-color: #1d2433; }
#pluginTable QHeaderView::section { background: #f4f6fa; color: #6b7385; border: none;
               border-bottom: 1px solid #dde2ea; padding: 5px 6px; font-weight: 600; }
#pluginTable::item { padding: 0 6px; border-bottom: 1px solid #f0f2f6; }
#detailsPane { background: white; border: 1px solid #dde2ea; border-radius: 6px; }
#detailTitle { font-size: 14px; font-weight: 700; color: #1d2433; }
#detailText { color: #3a4254; }
#errorBox { background: #fff4f4; border: 1px solid #f3c4c4; border-radius: 6px; }
#errorSummary { color: #a61b1b; }
#traceback { background: #1e222a; color: #e6e8ee; border: none; border-radius: 4px;
             font-family: monospace; font-size: 11px; }
#adminMessage { background: #e6edff; color: #2f4fb0; border-radius: 5px; padding: 6px 10px; }
#adminMessage[error="true"] { background: #fff4f4; color: #a61b1b; border: 1px solid #f3c4c4; }
#approvalTrusted { color: #176b3a; }
#approvalUntrusted { color: #8a5a00; background: #fff8e6; padding: 4px; border-radius: 4px; }
#approvalFindings { background: white; border: 1px solid #dde2ea; font-family: monospace; font-size: 11px; }
QPushButton { padding: 4px 11px; border: 1px solid #cfd5df; border-radius: 5px; background: white; color: #1d2433; }
QPushButton:hover { background: #eef1f6; }
QPushButton:disabled { color: #a9afbb; background: #f4f6fa; border-color: #e1e5ec; }
QPushButton#primaryButton { background: #3b6cf6; border-color: #3b6cf6; color: white; font-weight: 600; }
QPushButton#primaryButton:hover { background: #2f5bd6; }
QPushButton#primaryButton:disabled { background: #a9bdf5; border-color: #a9bdf5; }
QPushButton#dangerButton { color: #d93a3a; }
QPushButton#dangerButton:disabled { color: #e3b0b0; }
QLineEdit { background: white; border: 1px solid #cfd5df; border-radius: 5px; padding: 4px 6px; }
QToolButton { border: none; color: #a61b1b; font-weight: 600; }
"""
