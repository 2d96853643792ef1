"""The leads panel: a list of leads and a small form to add one."""

from PySide6.QtWidgets import (
    QFormLayout, QLabel, QLineEdit, QListWidget, QPushButton, QVBoxLayout, QWidget,
)

from .service import add_lead, leads_for_panel


class LeadsPanel(QWidget):
    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("sample-plugin-leads")
        self.list = QListWidget(self)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("Lead name")
        self.company = QLineEdit(self)
        self.company.setPlaceholderText("Company")
        self.add = QPushButton("Add lead", self)
        self.status = QLabel("", self)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Company", self.company)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addLayout(form)
        layout.addWidget(self.add)
        layout.addWidget(self.status)
        self.add.clicked.connect(self.add_lead)
        self.refresh()

    def refresh(self):
        self.list.clear()
        for lead in leads_for_panel(self.ctx):
            self.list.addItem(lead.title)

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
