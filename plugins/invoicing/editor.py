"""The quote/invoice editor: customer pickers, lines from products or free text, live exact totals."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from crm_desktop.plugin_api import ValidationError

from . import facade_calls
from .money import format_money, line_amounts, parse_amount, totals
from .service import InvoicingService, LineInput

COLUMNS = ("Description", "Qty", "Unit price", "Discount %", "Tax %", "Net")


class DocumentEditor(QDialog):
    """Edit a draft (``doc_id``) or make a new document of ``kind``; ``saved_id`` after Save."""

    def __init__(self, ctx, service: InvoicingService, *, doc_id: str | None = None, kind: str = "quote",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.service, self.doc_id = ctx, service, doc_id
        self.saved_id: str | None = None
        doc = service.get(doc_id) if doc_id else None
        self.kind = doc.kind if doc else kind
        self.currency = doc.currency if doc else "EUR"
        self.setWindowTitle(f"{'Edit' if doc else 'New'} {self.kind}" + (f" {doc.number}" if doc else ""))
        self.resize(820, 520)

        self.title = QLineEdit(doc.title or "" if doc else "")
        self.title.setPlaceholderText("What it is for, e.g. Website relaunch")
        self.company = QComboBox()
        self.company.addItem("— no company —", None)
        for company in facade_calls.companies(ctx):
            self.company.addItem(company.name, company.id)
        self.contact = QComboBox()
        self.company.currentIndexChanged.connect(self._fill_contacts)
        if doc and doc.company_id:
            self.company.setCurrentIndex(max(0, self.company.findData(doc.company_id)))
        self._fill_contacts()
        if doc and doc.contact_id:
            self.contact.setCurrentIndex(max(0, self.contact.findData(doc.contact_id)))

        form = QFormLayout()
        form.addRow("Title", self.title)
        form.addRow("Company", self.company)
        form.addRow("Contact", self.contact)

        self.lines = QTableWidget(0, len(COLUMNS))
        self.lines.setHorizontalHeaderLabels(COLUMNS)
        header = self.lines.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.lines.verticalHeader().setVisible(False)
        self.lines.itemChanged.connect(lambda _item: self._recompute())

        self.product = QComboBox()
        for product_id, name, price, rate in service.products():
            self.product.addItem(f"{name} — {format_money(price, self.currency)}", product_id)
        self.add_product = QPushButton("Add product")
        self.add_product.setEnabled(self.product.count() > 0)
        self.add_product.clicked.connect(self._add_product_line)
        self.add_text = QPushButton("Add free-text line")
        self.add_text.clicked.connect(lambda: self.add_line(LineInput("", Decimal("1"), Decimal("0"),
                                                                      service.default_tax_rate())))
        self.remove = QPushButton("Remove line")
        self.remove.clicked.connect(self._remove_line)
        tools = QHBoxLayout()
        tools.addWidget(self.product, 1)
        for button in (self.add_product, self.add_text, self.remove):
            tools.addWidget(button)

        self.totals = QLabel()
        self.totals.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.totals.setTextFormat(Qt.TextFormat.RichText)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Lines"))
        layout.addLayout(tools)
        layout.addWidget(self.lines, 1)
        layout.addWidget(self.totals)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

        for line in (doc.lines if doc else ()):
            self.add_line(LineInput(line.description, line.quantity, line.unit_price, line.tax_rate,
                                    line.discount_pct, line.product_id))
        self._recompute()

    def _fill_contacts(self) -> None:
        self.contact.clear()
        self.contact.addItem("— no contact —", None)
        contacts = facade_calls.contacts_of(self.ctx, self.company.currentData())
        if contacts is None:  # too many to list without a company: say so instead of cutting the list
            self.contact.setItemText(0, "— no contact (choose a company to list its contacts) —")
            return
        for contact in contacts:
            self.contact.addItem(contact.display_name, contact.id)

    def add_line(self, line: LineInput) -> None:
        self.lines.blockSignals(True)
        row = self.lines.rowCount()
        self.lines.insertRow(row)
        values = (line.description, f"{line.quantity.normalize():f}", f"{line.unit_price:f}",
                  f"{line.discount_pct.normalize():f}", f"{line.tax_rate.normalize():f}", "")
        for col, value in enumerate(values):
            item = QTableWidgetItem(value)
            if col:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if col == len(COLUMNS) - 1:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if col == 0:
                item.setData(Qt.ItemDataRole.UserRole, line.product_id)
            self.lines.setItem(row, col, item)
        self.lines.blockSignals(False)
        self._recompute()

    def _add_product_line(self) -> None:
        product_id = self.product.currentData()
        if product_id:
            self.add_line(self.service.line_from_product(product_id))

    def _remove_line(self) -> None:
        row = self.lines.currentRow()
        if row >= 0:
            self.lines.removeRow(row)
            self._recompute()

    def line_inputs(self) -> list[LineInput]:
        """The lines as typed; raises ValueError naming the line and the field that is not a number."""
        out = []
        for row in range(self.lines.rowCount()):
            cell = lambda col: (self.lines.item(row, col).text() if self.lines.item(row, col) else "")
            where = f"line {row + 1}"
            out.append(LineInput(cell(0).strip(), parse_amount(cell(1), f"{where} quantity"),
                                 parse_amount(cell(2), f"{where} unit price"),
                                 parse_amount(cell(4), f"{where} tax %"), parse_amount(cell(3), f"{where} discount %"),
                                 self.lines.item(row, 0).data(Qt.ItemDataRole.UserRole)))
        return out

    def _recompute(self) -> None:
        try:
            lines = self.line_inputs()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.error.setText("")
        amounts = []
        self.lines.blockSignals(True)
        for row, line in enumerate(lines):
            a = line_amounts(line.quantity, line.unit_price, line.discount_pct, line.tax_rate)
            amounts.append((a, line.tax_rate))
            self.lines.item(row, len(COLUMNS) - 1).setText(format_money(a.net, self.currency))
        self.lines.blockSignals(False)
        total = totals(amounts)
        taxes = "".join(f"Tax {rate.normalize():f} %: {format_money(tax, self.currency)}<br>"
                        for rate, tax in total.tax_by_rate)
        self.totals.setText(f"Net: {format_money(total.net, self.currency)}<br>{taxes}"
                            f"<b>Total: {format_money(total.gross, self.currency)}</b>")

    def save(self) -> None:
        try:
            lines = self.line_inputs()
            fields = dict(title=self.title.text().strip() or None, company_id=self.company.currentData(),
                          contact_id=self.contact.currentData())
            if self.doc_id:
                self.service.update(self.doc_id, lines=lines, **fields)
                self.saved_id = self.doc_id
            else:
                self.saved_id = self.service.create(self.kind, lines, **fields)
        except (ValueError, ValidationError) as exc:
            self.error.setText(str(exc))
            return
        self.accept()
