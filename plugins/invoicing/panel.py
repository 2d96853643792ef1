"""The Quotes & invoices panel: a filtered list with totals and overdue rows highlighted."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from crm_desktop.plugin_api import ValidationError

from . import facade_calls
from .editor import DocumentEditor
from .money import format_money
from .service import STATUSES, DocumentView, InvoicingService

COLUMNS = ("Number", "Kind", "Title", "Customer", "Status", "Issued", "Due", "Total")
OVERDUE = QColor("#fde2e1")
OVERDUE_TEXT = QColor("#a4161a")


class InvoicingPanel(QWidget):
    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.service = InvoicingService(ctx)
        self.views: list[DocumentView] = []
        self._companies: dict[str, str] = {}

        self.kind = QComboBox()
        for label, value in (("Quotes and invoices", None), ("Quotes", "quote"), ("Invoices", "invoice")):
            self.kind.addItem(label, value)
        self.status = QComboBox()
        self.status.addItem("Any status", None)
        for status in STATUSES:
            self.status.addItem(status.capitalize(), status)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search titles")
        self.search.setClearButtonEnabled(True)
        for signal in (self.kind.currentIndexChanged, self.status.currentIndexChanged, self.search.textChanged):
            signal.connect(lambda *_: self.refresh())
        filters = QHBoxLayout()
        filters.addWidget(self.kind)
        filters.addWidget(self.status)
        filters.addWidget(self.search, 1)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _i: self.edit())
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.buttons: dict[str, QPushButton] = {}
        actions = QHBoxLayout()
        for key, title, slot in (("new_quote", "New quote", lambda: self.new("quote")),
                                 ("new_invoice", "New invoice", lambda: self.new("invoice")),
                                 ("edit", "Edit", self.edit), ("issue", "Issue", self.issue),
                                 ("to_invoice", "Turn into invoice", self.to_invoice),
                                 ("paid", "Mark paid", lambda: self.set_status("paid")),
                                 ("void", "Void", lambda: self.set_status("void")),
                                 ("pdf", "Export PDF…", self.export), ("delete", "Delete draft", self.delete)):
            button = QPushButton(title)
            button.clicked.connect(slot)
            self.buttons[key] = button
            actions.addWidget(button)
        actions.addStretch(1)

        self.totals = QLabel()
        self.totals.setTextFormat(Qt.TextFormat.RichText)
        self.message = QLabel()
        self.message.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addLayout(actions)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.totals)
        layout.addWidget(self.message)
        self.refresh()

    # -- list ----------------------------------------------------------------------------------

    def _customer(self, view: DocumentView) -> str:
        if not view.company_id:
            return ""
        if view.company_id not in self._companies:
            company = facade_calls.get_company(self.ctx, view.company_id)
            self._companies[view.company_id] = company.name if company else "(not on this laptop)"
        return self._companies[view.company_id]

    def refresh(self) -> None:
        selected = self.selected()
        self.views = self.service.documents(kind=self.kind.currentData(), status=self.status.currentData(),
                                            text=self.search.text().strip() or None)
        self.table.setRowCount(len(self.views))
        for row, view in enumerate(self.views):
            number = view.number if view.seq is not None else ("—" if view.status == "draft" else "at next sync")
            values = (number, view.kind.capitalize(), view.title or "", self._customer(view),
                      view.display_status.capitalize(), view.issue_date.isoformat() if view.issue_date else "",
                      view.due_date.isoformat() if view.due_date else "", format_money(view.gross_total, view.currency))
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, view.id)
                if col == len(COLUMNS) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == 0 and view.seq is None:
                    item.setForeground(QBrush(QColor("#6b7280")))
                    item.setToolTip("Numbers are given by the sync server when an issued document syncs")
                if view.overdue:
                    item.setBackground(QBrush(OVERDUE))
                    item.setForeground(QBrush(OVERDUE_TEXT))
                self.table.setItem(row, col, item)
            if selected is not None and view.id == selected.id:
                self.table.selectRow(row)
        invoices = [v for v in self.views if v.kind == "invoice" and v.status != "void"]
        open_total = sum((v.gross_total for v in invoices if v.status in ("sent", "overdue")), Decimal("0"))
        overdue = [v for v in invoices if v.overdue]
        overdue_total = sum((v.gross_total for v in overdue), Decimal("0"))
        listed = sum((v.gross_total for v in self.views if v.status != "void"), Decimal("0"))
        self.totals.setText(
            f"{len(self.views)} listed · total {format_money(listed)} · open invoices {format_money(open_total)}"
            + (f" · <span style='color:#a4161a'><b>{len(overdue)} overdue: {format_money(overdue_total)}</b></span>"
               if overdue else ""))
        self._update_buttons()

    def selected(self) -> DocumentView | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.views):
            return None
        return self.views[rows[0].row()]

    def _update_buttons(self) -> None:
        view = self.selected()
        state = {
            "edit": view is not None and view.status == "draft",
            "issue": view is not None and view.status == "draft",
            "to_invoice": view is not None and view.kind == "quote" and view.status in ("sent", "accepted"),
            "paid": view is not None and view.kind == "invoice" and view.status in ("sent", "overdue"),
            "void": view is not None and view.status not in ("draft", "void", "paid"),
            "pdf": view is not None,
            "delete": view is not None and view.status == "draft",
        }
        for key, enabled in state.items():
            self.buttons[key].setEnabled(enabled)

    # -- actions -------------------------------------------------------------------------------

    def _run(self, what, done: str) -> None:
        try:
            what()
        except (ValidationError, ValueError) as exc:
            self.message.setStyleSheet("color: #b00020")
            self.message.setText(str(exc))
            return
        self.message.setStyleSheet("")
        self.message.setText(done)
        self.refresh()

    def new(self, kind: str) -> None:
        editor = DocumentEditor(self.ctx, self.service, kind=kind, parent=self)
        if editor.exec() == QDialog.DialogCode.Accepted:
            self.refresh()

    def edit(self) -> None:
        view = self.selected()
        if view is None or view.status != "draft":
            return
        editor = DocumentEditor(self.ctx, self.service, doc_id=view.id, parent=self)
        if editor.exec() == QDialog.DialogCode.Accepted:
            self.refresh()

    def issue(self) -> None:
        view = self.selected()
        if view is not None:
            self._run(lambda: self.service.issue(view.id),
                      f"{view.kind.capitalize()} issued: it gets its number at the next sync")

    def to_invoice(self) -> None:
        view = self.selected()
        if view is not None:
            self._run(lambda: self.service.invoice_from_quote(view.id), "Invoice draft made from the quote")

    def set_status(self, status: str) -> None:
        view = self.selected()
        if view is not None:
            self._run(lambda: self.service.set_status(view.id, status), f"{view.number}: {status}")

    def delete(self) -> None:
        view = self.selected()
        if view is not None:
            self._run(lambda: self.service.delete(view.id), "Draft deleted")

    def export(self) -> Path | None:
        """Save the selected document's PDF where the user picks (the host writes the file)."""
        view = self.selected()
        if view is None:
            return None
        from .invoicing import export_document

        out = export_document(self.ctx, view.id)
        if out is not None:
            self.message.setStyleSheet("")
            self.message.setText(f"Saved {out}")
        return out
