"""Quick actions on a record: log a call/visit/note, schedule a follow-up."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from PySide6.QtCore import QDateTime, QTime
from PySide6.QtWidgets import (
    QComboBox, QDateTimeEdit, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit,
    QVBoxLayout, QWidget,
)

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.errors import ValidationError


class ActivityDialog(QDialog):
    """Log something that happened (``schedule=False``) or plan a follow-up (``schedule=True``).

    ``links`` are the record ids the activity belongs to (contact_id, company_id, ...).
    """

    def __init__(self, services, kind: ActivityKind, links: dict[str, str | None], *, schedule: bool = False,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._services = services
        self._links = {k: v for k, v in links.items() if v}
        self._schedule = schedule
        self.activity = None
        self.setWindowTitle(("Schedule " if schedule else "Log ") + kind.value)
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.kind = QComboBox()
        for k in ActivityKind:
            self.kind.addItem(k.value.capitalize(), k.value)
        self.kind.setCurrentIndex(self.kind.findData(kind.value))
        self.subject = QLineEdit(placeholderText="What was it about?" if not schedule else "Follow up on…")
        self.due = QDateTimeEdit(calendarPopup=True)
        self.due.setDisplayFormat("dd MMM yyyy HH:mm")
        tomorrow = QDateTime.currentDateTime().addDays(1)
        tomorrow.setTime(QTime(9, 0))
        self.due.setDateTime(tomorrow)
        self.body = QPlainTextEdit()
        self.body.setFixedHeight(90)
        form.addRow("Kind", self.kind)
        form.addRow("Subject", self.subject)
        if schedule:
            form.addRow("Due", self.due)
        form.addRow("Notes", self.body)
        layout.addLayout(form)
        self.error = QLabel(objectName="FieldError", wordWrap=True)
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Schedule" if schedule else "Log")
        buttons.button(QDialogButtonBox.StandardButton.Ok).setProperty("primary", True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def accept(self) -> None:
        """Write the activity; stay open with the service's message when it is invalid."""
        fields = dict(self._links, body=self.body.toPlainText() or None)
        try:
            if self._schedule:
                due = self.due.dateTime().toPython().astimezone().astimezone(timezone.utc)
                self.activity = self._services.activities.schedule(self.kind.currentData(), self.subject.text(),
                                                                   due, **fields)
            else:
                self.activity = self._services.activities.log(self.kind.currentData(), self.subject.text(), **fields)
        except ValidationError as exc:
            self.error.setText(f"{exc.field.replace('_', ' ').capitalize()}: {exc.rule}")
            self.error.show()
            return
        super().accept()
