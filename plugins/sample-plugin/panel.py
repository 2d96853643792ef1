"""The leads panel: the newest leads, a form to add one, and "Qualify" (asks, works in the
background, then opens the new deal): it never needs the main window, only ``ctx.ui``."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget,
)

from crm_desktop.plugin_api import NotConfigured

from .service import add_lead, leads_for_panel, qualify


class LeadsPanel(QWidget):
    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("sample-plugin-leads")
        self.list = QListWidget(self)
        self.more = QLabel("", self)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("Lead name")
        self.company = QLineEdit(self)
        self.company.setPlaceholderText("Company")
        self.add = QPushButton("Add lead", self)
        self.qualify = QPushButton("Qualify selected", self)
        self.status = QLabel("", self)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Company", self.company)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(self.more)
        layout.addLayout(form)
        layout.addWidget(self.add)
        layout.addWidget(self.qualify)
        layout.addWidget(self.status)
        self.add.clicked.connect(self.add_lead)
        self.qualify.clicked.connect(self.qualify_selected)
        self.refresh()

    def refresh(self):
        self.list.clear()
        leads, has_more = leads_for_panel(self.ctx)
        for lead in leads:
            item = QListWidgetItem(lead.title)
            item.setData(Qt.ItemDataRole.UserRole, lead.id)
            self.list.addItem(item)
        self.more.setText("More leads in the Leads view" if has_more else "")

    def add_lead(self):
        name = self.name.text().strip()
        if not name:
            self.status.setText("A lead needs a name")
            return
        add_lead(self.ctx, name, self.company.text().strip())
        self.name.clear()
        self.company.clear()
        self.status.setText(f"Added {name}")
        self.refresh()

    def qualify_selected(self):
        item = self.list.currentItem()
        if item is None:
            self.status.setText("Select a lead first")
            return
        lead_id, title = item.data(Qt.ItemDataRole.UserRole), item.text()
        try:
            ui = self.ctx.ui
        except NotConfigured:
            self.status.setText("Qualifying needs the desktop app")
            return
        if not ui.confirm("Qualify lead", f"Convert {title} into a contact, company and deal?"):
            return
        self.status.setText(f"Qualifying {title}...")
        ui.run_in_background(lambda: qualify(self.ctx, lead_id), on_done=self._qualified, on_error=self._failed)

    def _qualified(self, result):
        conversion, deal, follow_up = result
        self.status.setText(f"Qualified: {deal.title}")
        self.ctx.ui.show_status(f"{conversion.lead.title} is now deal {deal.title}")
        self.ctx.ui.open_record("deal", deal.id)
        self.refresh()

    def _failed(self, exc):
        self.status.setText(f"Could not qualify: {exc}")
