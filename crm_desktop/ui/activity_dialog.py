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
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.theme import named


class ActivityDialog(QDialog):
    """Log something that happened (``schedule=False``) or plan a follow-up (``schedule=True``).

    ``links`` are the record ids the activity belongs to (contact_id, company_id, ...). The write
    runs on the ``executor``'s writer: the dialog says "Saving…" and closes once it is written, or
    stays open with the reason.
    """

    def __init__(self, services, kind: ActivityKind, links: dict[str, str | None], *, schedule: bool = False,
                 executor=None, parent: QWidget | None = None):
        super().__init__(parent)
        self._services = services
        self._executor = executor if executor is not None else InlineExecutor()
        self.saving = False
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
        self.error = named(QLabel(wordWrap=True), "FieldError")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Schedule" if schedule else "Log")
        self.ok_button.setProperty("primary", True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def accept(self) -> None:
        """Write the activity on the writer; stay open with the service's message when it is invalid."""
        if self.saving:
            return
        fields = dict(self._links, body=self.body.toPlainText() or None)
        activities, kind, subject = self._services.activities, self.kind.currentData(), self.subject.text()
        if self._schedule:
            picked = self.due.dateTime().toPython()
            assert isinstance(picked, datetime)  # (typed object in the stubs)
            due = picked.astimezone().astimezone(timezone.utc)

            def write():
                return activities.schedule(kind, subject, due, **fields)
        else:
            def write():
                return activities.log(kind, subject, **fields)

        self.saving = True
        self.ok_button.setEnabled(False)
        self.error.hide()
        self.ok_button.setText("Saving…")
        self._executor.write(write, done=self._written, failed=self._refused, context=self,
                             label="log activity")

    def _written(self, activity) -> None:
        self.saving = False
        self.activity = activity
        super().accept()

    def _refused(self, exc: BaseException) -> None:
        self.saving = False
        self.ok_button.setEnabled(True)
        self.ok_button.setText("Schedule" if self._schedule else "Log")
        if isinstance(exc, ValidationError):
            self.error.setText(f"{exc.field.replace('_', ' ').capitalize()}: {exc.rule}")
        else:
            self.error.setText(f"Not saved: {exc}")
        self.error.show()

    def reject(self) -> None:
        if self.saving:
            return  # the write is on its way; closing now would hide whether it was saved
        super().reject()
