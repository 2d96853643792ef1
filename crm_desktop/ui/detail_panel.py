"""The right-hand panel of a list: a record's form, quick actions and related lists."""

from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMenu, QMessageBox, QPushButton, QScrollArea,
    QTabWidget, QToolButton, QVBoxLayout, QWidget,
)

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.errors import CrmError
from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.ui.activity_dialog import ActivityDialog
from crm_desktop.ui.entities import EntitySpec, money, when
from crm_desktop.ui.record_form import RecordForm
from crm_desktop.ui.resources import icon

log = logging.getLogger(__name__)

_LINK_FIELD = {"contact": "contact_id", "company": "company_id", "deal": "deal_id", "lead": "lead_id"}


class DuplicateBanner(QFrame):
    """"This looks like an existing contact" with buttons to open or merge it."""

    open_requested = Signal(str)
    merge_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, objectName="Banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        badge = QLabel()
        badge.setPixmap(icon("warning", "#c98a00", 18).pixmap(18, 18))
        layout.addWidget(badge)
        self.text = QLabel(wordWrap=True)
        layout.addWidget(self.text, 1)
        self.open_button = QPushButton("Open")
        self.merge_button = QPushButton(icon("merge"), "Merge")
        layout.addWidget(self.open_button)
        layout.addWidget(self.merge_button)
        self.match_id: str | None = None
        self.open_button.clicked.connect(lambda: self.match_id and self.open_requested.emit(self.match_id))
        self.merge_button.clicked.connect(lambda: self.match_id and self.merge_requested.emit(self.match_id))
        self.hide()


class DetailPanel(QFrame):
    """Shows one record of ``spec.entity`` (or an empty form for a new one).

    ``changed()`` after the record was saved, merged or converted (the list refreshes);
    ``open_record(entity, id)`` when the user follows a related item.
    """

    changed = Signal()
    open_record = Signal(str, str)

    def __init__(self, spec: EntitySpec, services, *,
                 record_actions: Callable[[str, list[str], QMenu], None] | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent, objectName="DetailPanel")
        self.spec = spec
        self._services = services
        self._record_actions = record_actions
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title = QLabel(objectName="DetailTitle")
        self.subtitle = QLabel(objectName="Muted")
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        header.addLayout(titles, 1)
        self.more_button = QToolButton(text="⋯", toolTip="More actions")
        self.more_button.clicked.connect(self._show_more_menu)
        header.addWidget(self.more_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(header)

        self.actions_bar = QHBoxLayout()
        self.actions_bar.setSpacing(6)
        self.action_buttons: dict[str, QToolButton] = {}
        if spec.entity in _LINK_FIELD:
            self._add_action("call", "Call", "phone", lambda: self.log_activity(ActivityKind.CALL))
            self._add_action("visit", "Visit", "visit", lambda: self.log_activity(ActivityKind.VISIT))
            self._add_action("note", "Note", "note", lambda: self.log_activity(ActivityKind.NOTE))
            self._add_action("follow_up", "Follow-up", "task", self.schedule_follow_up)
        if spec.entity == "lead":
            self._add_action("convert", "Convert", "convert", self.convert_lead)
            if not hasattr(services.leads, "convert"):
                self._guard("convert", "Lead conversion is not available yet (services.leads.convert is missing)")
        if spec.entity == "activity":
            self._add_action("complete", "Mark done", "task", self.complete_activity)
        self.actions_bar.addStretch(1)
        layout.addLayout(self.actions_bar)

        self.duplicates = DuplicateBanner()
        self.duplicates.open_requested.connect(lambda rid: self.open_record.emit(spec.entity, rid))
        self.duplicates.merge_requested.connect(self.merge_into)
        layout.addWidget(self.duplicates)

        self.form = RecordForm(spec, services)
        self.form.saved.connect(self._on_saved)
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        scroll.setWidget(self.form)
        layout.addWidget(scroll, 3)

        self.related = QTabWidget()
        self.related_lists: dict[str, QListWidget] = {}
        for name in spec.related:
            view = QListWidget()
            view.itemActivated.connect(self._follow)
            self.related_lists[name] = view
            self.related.addTab(view, name.capitalize())
        layout.addWidget(self.related, 1)
        self.related.setVisible(bool(spec.related))

        if spec.entity == "contact":
            self._dup_timer = QTimer(self, singleShot=True, interval=250)
            self._dup_timer.timeout.connect(self.check_duplicates)
            for name in ("first_name", "last_name", "email", "phone", "mobile"):
                self.form.inputs[name].textEdited.connect(lambda *_: self._dup_timer.start())
        self.show_record(None)

    # -- showing ------------------------------------------------------------------------

    @property
    def record(self):
        return self.form.record

    def show_record(self, record) -> None:
        """Show ``record``; None starts a new one."""
        self.form.load(record)
        self.duplicates.hide()
        new = record is None
        self.title.setText(f"New {self.spec.singular.lower()}" if new else (record.display_name or "(no name)"))
        self.subtitle.setText("" if new else self._subtitle(record))
        for key, button in self.action_buttons.items():
            button.setEnabled(not new and not button.property("guarded"))
        if "convert" in self.action_buttons and not new and getattr(record, "converted_at", None):
            self.action_buttons["convert"].setEnabled(False)
            self.action_buttons["convert"].setToolTip("This lead was converted already")
        self.more_button.setEnabled(not new)
        self._load_related(record)

    def _subtitle(self, record) -> str:
        e = self.spec.entity
        if e == "contact":
            return " · ".join(p for p in (record.job_title, record.company_name) if p)
        if e == "deal":
            return f"{record.stage_name or ''} · {money(record.amount_cents, record.currency)}"
        if e == "lead":
            return f"{str(record.status).capitalize()}" + (f" · {record.company_name}" if record.company_name else "")
        if e == "activity":
            return f"{str(record.kind).capitalize()} · due {when(record.due_at) or '—'}"
        return " · ".join(p for p in (getattr(record, "industry", None), getattr(record, "city", None)) if p)

    def _load_related(self, record) -> None:
        for view in self.related_lists.values():
            view.clear()
        if record is None:
            return
        s, e = self._services, self.spec.entity
        link = _LINK_FIELD.get(e)
        try:
            if "activities" in self.related_lists and link:
                for a in s.activities.for_record(**{link: record.id}, limit=100):
                    state = "✓" if a.done_at else "○"
                    self._add_related("activities", "activity", a.id,
                                      f"{state}  {a.kind.value.capitalize()}: {a.subject}   {when(a.done_at or a.due_at)}")
            if "deals" in self.related_lists and link in ("contact_id", "company_id"):
                page = s.deals.list(ListQuery(**{link: record.id}), Sort("updated", True), limit=100)
                for d in page.items:
                    self._add_related("deals", "deal", d.id,
                                      f"{d.title}   ·   {d.stage_name}   ·   {money(d.amount_cents, d.currency)}")
            if "contacts" in self.related_lists:
                page = s.contacts.list(ListQuery(company_id=record.id), limit=200)
                for c in page.items:
                    self._add_related("contacts", "contact", c.id,
                                      " · ".join(p for p in (c.display_name, c.job_title, c.email) if p))
        except CrmError:
            log.exception("related lists of %s %s", e, record.id)
        for name, view in self.related_lists.items():
            index = list(self.related_lists).index(name)
            self.related.setTabText(index, f"{name.capitalize()} ({view.count()})")

    def _add_related(self, list_name: str, entity: str, record_id: str, text: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, (entity, record_id))
        self.related_lists[list_name].addItem(item)

    def _follow(self, item: QListWidgetItem) -> None:
        entity, record_id = item.data(Qt.ItemDataRole.UserRole)
        self.open_record.emit(entity, record_id)

    # -- actions --------------------------------------------------------------------------

    def _add_action(self, key: str, text: str, icon_name: str, slot) -> None:
        tips = {"call": "Log a call", "visit": "Log a visit", "note": "Add a note",
                "follow_up": "Schedule a follow-up task", "convert": "Convert to contact, company and deal"}
        button = QToolButton(text=text, icon=icon(icon_name), toolTip=tips.get(key, text))
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setProperty("chip", True)
        button.clicked.connect(slot)
        self.action_buttons[key] = button
        self.actions_bar.addWidget(button)

    def _guard(self, key: str, why: str) -> None:
        button = self.action_buttons[key]
        button.setProperty("guarded", True)
        button.setEnabled(False)
        button.setToolTip(why)

    def _links(self) -> dict[str, str | None]:
        record = self.record
        links = {_LINK_FIELD[self.spec.entity]: record.id}
        if self.spec.entity in ("contact", "deal") and getattr(record, "company_id", None):
            links["company_id"] = record.company_id
        return links

    def log_activity(self, kind: ActivityKind) -> None:
        dialog = ActivityDialog(self._services, kind, self._links(), parent=self)
        if dialog.exec():
            self._after_change()

    def schedule_follow_up(self) -> None:
        dialog = ActivityDialog(self._services, ActivityKind.TASK, self._links(), schedule=True, parent=self)
        if dialog.exec():
            self._after_change()

    def complete_activity(self) -> None:
        self.form.load(self._services.activities.complete(self.record.id))
        self._after_change()

    def convert_lead(self) -> None:
        try:
            self._services.leads.convert(self.record.id, create_deal=True)
        except CrmError as exc:
            QMessageBox.warning(self, "Convert lead", str(exc))
            return
        self.show_record(self._services.leads.find(self.record.id))
        self.changed.emit()

    def check_duplicates(self) -> list:
        """Ask the duplicates service whether the contact being edited looks like another one."""
        finder = getattr(self._services, "duplicates", None)
        if finder is None or not hasattr(finder, "contacts_like"):
            return []
        values = self.form.values()
        try:
            matches = finder.contacts_like(
                first_name=values.get("first_name") or None, last_name=values.get("last_name") or None,
                email=values.get("email") or None, phone=values.get("phone") or None,
                mobile=values.get("mobile") or None, company_id=values.get("company_id"),
                exclude_id=self.record.id if self.record is not None else None)
        except CrmError:
            matches = []
        if not matches:
            self.duplicates.hide()
            return []
        match = matches[0]
        other = self._services.contacts.find(match.contact_id)
        name = other.display_name if other else match.contact_id
        self.duplicates.match_id = match.contact_id
        self.duplicates.text.setText(f"This looks like an existing contact: <b>{name}</b> ({match.reason}).")
        can_merge = self.record is not None and hasattr(getattr(self._services, "merge", None), "contacts")
        self.duplicates.merge_button.setEnabled(can_merge)
        self.duplicates.merge_button.setToolTip("" if can_merge else
                                                "Save first to merge" if self.record is None else
                                                "Merging is not available yet (services.merge is missing)")
        self.duplicates.show()
        return matches

    def merge_into(self, survivor_id: str) -> None:
        """Merge the shown contact into ``survivor_id`` (after asking)."""
        if self.record is None:
            return
        answer = QMessageBox.question(self, "Merge contacts",
                                      "Merge this contact into the existing one? Its activities, deals and "
                                      "tags move over and this record is removed.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self._services.merge.contacts(survivor_id, self.record.id)
        except CrmError as exc:
            QMessageBox.warning(self, "Merge contacts", str(exc))
            return
        self.show_record(self._services.contacts.find(survivor_id))
        self.changed.emit()

    def _show_more_menu(self) -> None:
        menu = QMenu(self)
        delete = menu.addAction(icon("trash"), f"Delete {self.spec.singular.lower()}")
        delete.triggered.connect(self.delete_record)
        if self._record_actions is not None and self.record is not None:
            self._record_actions(self.spec.entity, [self.record.id], menu)
        menu.popup(self.more_button.mapToGlobal(self.more_button.rect().bottomLeft()))

    def delete_record(self) -> None:
        if self.record is None:
            return
        if QMessageBox.question(self, "Delete", f"Delete {self.record.display_name}?") != QMessageBox.StandardButton.Yes:
            return
        self._services.entity_service(self.spec.entity).delete(self.record.id)
        self.show_record(None)
        self.changed.emit()

    def _on_saved(self, record) -> None:
        self.show_record(record)
        self.changed.emit()

    def _after_change(self) -> None:
        self._load_related(self.record)
        self.changed.emit()
