"""The right-hand panel of a list: a record's form, quick actions and related lists."""

from __future__ import annotations

import html
import logging
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMenu, QMessageBox, QPushButton, QScrollArea,
    QLineEdit, QTabWidget, QToolButton, QVBoxLayout, QWidget,
)

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.errors import CrmError
from crm_desktop.services.paging import ListQuery, Sort
from crm_desktop.ui.activity_dialog import ActivityDialog
from crm_desktop.ui import unsaved
from crm_desktop.ui.entities import EntitySpec, lead_status_text, money, when
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.record_form import RecordForm
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

_LINK_FIELD = {"contact": "contact_id", "company": "company_id", "deal": "deal_id", "lead": "lead_id"}
_EMPTY_RELATED = {"activities": "No activities yet. Log a call, visit or note above.",
                  "deals": "No deals yet.", "contacts": "No contacts at this company yet."}


def _related_items(services, entity: str, record_id: str, wanted: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """(entity, id, line) of each related list of a record; runs on the executor's reader."""
    link = _LINK_FIELD.get(entity)
    out: dict[str, list[tuple[str, str, str]]] = {}
    if "activities" in wanted and link:
        out["activities"] = [
            ("activity", a.id, f"{'✓' if a.done_at else '○'}  {a.kind.value.capitalize()}: {a.subject}   "
                               f"{when(a.done_at or a.due_at)}")
            for a in services.activities.for_record(**{link: record_id}, limit=100)]
    if "deals" in wanted and link in ("contact_id", "company_id"):
        query = ListQuery(contact_id=record_id) if link == "contact_id" else ListQuery(company_id=record_id)
        page = services.deals.list(query, Sort("updated", True), limit=100)
        out["deals"] = [("deal", d.id, f"{d.title}   ·   {d.stage_name}   ·   {money(d.amount_cents, d.currency)}")
                        for d in page.items]
    if "contacts" in wanted:
        page = services.contacts.list(ListQuery(company_id=record_id), limit=200)
        out["contacts"] = [("contact", c.id, " · ".join(p for p in (c.display_name, c.job_title, c.email) if p))
                           for c in page.items]
    return out


class DuplicateBanner(QFrame):
    """"This looks like an existing contact" with buttons to open or merge it."""

    open_requested = Signal(str)
    merge_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Banner")
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
    ``open_record(entity, id)`` when the user follows a related item; ``status(text)`` for the
    window's status bar ("Saved …"). Writes and the duplicate check run on the executor.
    """

    changed = Signal()
    open_record = Signal(str, str)
    status = Signal(str)

    def __init__(self, spec: EntitySpec, services, *,
                 record_actions: Callable[[str, list[str], QMenu], None] | None = None,
                 executor=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("DetailPanel")
        self.spec = spec
        self._services = services
        self._record_actions = record_actions
        self._executor = executor if executor is not None else InlineExecutor()
        self.last_duplicates: list = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(10)
        header = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title = named(QLabel(), "DetailTitle")
        self.subtitle = named(QLabel(), "Muted")
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        header.addLayout(titles, 1)
        self.more_button = QToolButton()
        self.more_button.setText("⋯")
        self.more_button.setToolTip("More actions")
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
        if spec.entity == "activity":
            self._add_action("complete", "Mark done", "task", self.complete_activity)
        self.actions_bar.addStretch(1)
        layout.addLayout(self.actions_bar)

        self.duplicates = DuplicateBanner()
        self.duplicates.open_requested.connect(lambda rid: self.open_record.emit(spec.entity, rid))
        self.duplicates.merge_requested.connect(self.merge_into)
        layout.addWidget(self.duplicates)

        self.conversion = named(QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText), "Banner")
        self.conversion.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse
                                                | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
        self.conversion.linkActivated.connect(self._follow_link)
        self.conversion.hide()
        layout.addWidget(self.conversion)

        self.form = RecordForm(spec, services, executor=self._executor, own_buttons=False)
        self.form.saved.connect(self._on_saved)
        # (not ``self.scroll``: that would hide QWidget.scroll)
        self.form_scroll = QScrollArea(widgetResizable=True)
        self.form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.form_scroll.setWidget(self.form)
        layout.addWidget(self.form_scroll, 3)
        # Save and Revert stay on screen below the scrolling form, however tall the form is
        layout.addWidget(self.form.button_bar)

        self.related = QTabWidget()
        self.related_lists: dict[str, QListWidget] = {}
        for name in spec.related:
            view = QListWidget()
            view.itemActivated.connect(self._follow)
            self.related_lists[name] = view
            self.related.addTab(view, name.capitalize())
        layout.addWidget(self.related, 1)
        self.related.setVisible(bool(spec.related))
        self._related_for: str | None = None

        if spec.entity == "contact":
            self._dup_timer = QTimer(self, singleShot=True, interval=250)
            self._dup_timer.timeout.connect(self.check_duplicates)
            for name in ("first_name", "last_name", "email", "phone", "mobile"):
                line_edit = self.form.inputs[name]
                assert isinstance(line_edit, QLineEdit)  # the contact's names, e-mail and phones are line edits
                line_edit.textEdited.connect(lambda *_: self._dup_timer.start())
        self.show_record(None)

    # -- showing ------------------------------------------------------------------------

    @property
    def record(self):
        return self.form.record

    def show_record(self, record) -> None:
        """Show ``record``; None starts a new one."""
        self.form.load(record)
        self.duplicates.hide()
        self.conversion.hide()
        if record is not None and self.spec.entity == "lead" and getattr(record, "converted_at", None):
            self._show_conversion_of(record)
        new = record is None
        self.title.setText(f"New {self.spec.singular.lower()}" if new else (record.display_name or "(no name)"))
        self.subtitle.setText("" if new else self._subtitle(record))
        for key, button in self.action_buttons.items():
            button.setEnabled(not new)
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
            return lead_status_text(record) + (f" · {record.company_name}" if record.company_name else "")
        if e == "activity":
            return f"{str(record.kind).capitalize()} · due {when(record.due_at) or '—'}"
        return " · ".join(p for p in (getattr(record, "industry", None), getattr(record, "city", None)) if p)

    def _load_related(self, record) -> None:
        """Fill the related lists on the reader: "Loading…" until the answer, then the items, an
        empty-state line, or the error in one sentence."""
        self._related_for = record.id if record is not None else None
        for view in self.related_lists.values():
            view.clear()
        if record is None or not self.related_lists:
            self._related_titles(None)
            return
        for view in self.related_lists.values():
            self._note(view, "Loading…")
        self._related_titles("…")
        services, entity, record_id, wanted = self._services, self.spec.entity, record.id, list(self.related_lists)
        self._executor.read(lambda: _related_items(services, entity, record_id, wanted),
                            done=lambda items: self._show_related(record_id, items),
                            failed=lambda exc: self._related_failed(record_id, exc), context=self,
                            key=("related", id(self)), label=f"related lists of {entity}")

    def _show_related(self, record_id: str, items: dict[str, list[tuple[str, str, str]]]) -> None:
        if self._related_for != record_id:
            return  # another record is shown by now
        for name, view in self.related_lists.items():
            view.clear()
            rows = items.get(name, [])
            for entity, rid, text in rows:
                self._add_related(name, entity, rid, text)
            if not rows:
                self._note(view, _EMPTY_RELATED.get(name, f"No {name} yet."))
        self._related_titles({name: len(items.get(name, [])) for name in self.related_lists})

    def _related_failed(self, record_id: str, exc: BaseException) -> None:
        if self._related_for != record_id:
            return
        log.warning("related lists of %s %s: %s", self.spec.entity, record_id, exc)
        for view in self.related_lists.values():
            view.clear()
            self._note(view, f"Could not load this list: {exc}")
        self._related_titles("!")

    def _related_titles(self, counts) -> None:
        for index, name in enumerate(self.related_lists):
            if isinstance(counts, dict):
                self.related.setTabText(index, f"{name.capitalize()} ({counts[name]})")
            elif counts:
                self.related.setTabText(index, f"{name.capitalize()} ({counts})")
            else:
                self.related.setTabText(index, name.capitalize())

    @staticmethod
    def _note(view: QListWidget, text: str) -> None:
        """A grey line in an empty list (loading, nothing yet, an error); it opens nothing."""
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        view.addItem(item)

    def related_texts(self, name: str) -> list[str]:
        """The lines of related list ``name`` that open a record (what the user can click)."""
        view = self.related_lists[name]
        return [view.item(i).text() for i in range(view.count())
                if view.item(i).data(Qt.ItemDataRole.UserRole) is not None]

    def _add_related(self, list_name: str, entity: str, record_id: str, text: str) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, (entity, record_id))
        self.related_lists[list_name].addItem(item)

    def _follow(self, item: QListWidgetItem) -> None:
        data = item.data(Qt.ItemDataRole.UserRole)
        if data:
            entity, record_id = data
            self.open_record.emit(entity, record_id)

    # -- actions --------------------------------------------------------------------------

    def _add_action(self, key: str, text: str, icon_name: str, slot) -> None:
        tips = {"call": "Log a call", "visit": "Log a visit", "note": "Add a note",
                "follow_up": "Schedule a follow-up task", "convert": "Convert to contact, company and deal"}
        button = QToolButton()
        button.setText(text)
        button.setIcon(icon(icon_name))
        button.setToolTip(tips.get(key, text))
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setProperty("chip", True)
        button.clicked.connect(slot)
        self.action_buttons[key] = button
        self.actions_bar.addWidget(button)

    def _links(self) -> dict[str, str | None]:
        record = self.record
        links = {_LINK_FIELD[self.spec.entity]: record.id}
        if self.spec.entity in ("contact", "deal") and getattr(record, "company_id", None):
            links["company_id"] = record.company_id
        return links

    def log_activity(self, kind: ActivityKind) -> None:
        dialog = ActivityDialog(self._services, kind, self._links(), executor=self._executor, parent=self)
        if dialog.exec():
            self._after_change()

    def schedule_follow_up(self) -> None:
        dialog = ActivityDialog(self._services, ActivityKind.TASK, self._links(), schedule=True,
                                executor=self._executor, parent=self)
        if dialog.exec():
            self._after_change()

    def complete_activity(self) -> None:
        record_id, activities = self.record.id, self._services.activities

        def completed(record) -> None:
            self.show_record(record)
            self._after_change()

        self._executor.write(lambda: activities.complete(record_id), done=completed, context=self,
                             label="complete activity",
                             failed=lambda exc: QMessageBox.warning(self, "Mark done", str(exc)))

    def convert_lead(self) -> None:
        """Ask, convert on the writer thread, then say what was created with links to each record."""
        lead = self.record
        if lead is None:
            return
        if self.form.is_dirty():
            QMessageBox.information(self, "Convert lead", "Save or revert your changes to this lead first.")
            return
        person = " ".join(x for x in (lead.first_name, lead.last_name) if x)
        parts = [f"a contact ({person})"] if person else []
        if lead.company_name:
            parts.append(f"a company ({lead.company_name}, or uses the existing one of that name)")
        parts.append(f"a deal ({lead.title})")
        question = (f"Convert the lead “{lead.title}”?\n\nThis creates " + ", ".join(parts) +
                    " and marks the lead converted. It cannot be undone from here.")
        if not confirm(self, "Convert lead", question, "Convert"):
            return
        button = self.action_buttons["convert"]
        button.setEnabled(False)
        services, lead_id = self._services, lead.id

        def convert():
            result = services.leads.convert(lead_id, create_deal=True)
            return result, _created_links(services, result)

        def converted(answer) -> None:
            result, links = answer
            if self.record is not None and self.record.id == lead_id:
                self.show_record(result.lead)
                self.conversion.setText(_conversion_text(links))
                self.conversion.show()
            self.status.emit(f"Converted lead “{result.lead.title}”")
            self.changed.emit()

        def refused(exc: BaseException) -> None:
            button.setEnabled(True)
            QMessageBox.warning(self, "Convert lead", str(exc))

        self._executor.write(convert, done=converted, failed=refused, context=self, label="convert lead")

    def _show_conversion_of(self, lead) -> None:
        services = self._services

        class _Converted:  # the ids a converted lead keeps, shaped like a ConversionResult
            contact_id = lead.converted_contact_id
            company_id = lead.converted_company_id
            deal_id = lead.converted_deal_id
            company_created = None

        def shown(links) -> None:
            if self.record is not None and self.record.id == lead.id:
                self.conversion.setText(_conversion_text(links, already=True))
                self.conversion.show()

        self._executor.read(lambda: _created_links(services, _Converted), done=shown, context=self,
                            key=("conversion", id(self)), label="converted lead links")

    def _follow_link(self, link: str) -> None:
        entity, _, record_id = link.partition(":")
        if record_id:
            self.open_record.emit(entity, record_id)

    def check_duplicates(self) -> None:
        """Ask the duplicates service (on the reader thread) whether the contact being edited looks
        like another one; the banner shows the answer."""
        finder = self._services.duplicates
        values = self.form.values()
        exclude_id = self.record.id if self.record is not None else None
        services = self._services

        def look():
            try:
                matches = finder.contacts_like(
                    first_name=values.get("first_name") or None, last_name=values.get("last_name") or None,
                    email=values.get("email") or None, phone=values.get("phone") or None,
                    mobile=values.get("mobile") or None, company_id=values.get("company_id"),
                    exclude_id=exclude_id)
            except CrmError:
                matches = []
            if not matches:
                return [], None
            other = services.contacts.find(matches[0].contact_id)
            return matches, other.display_name if other else matches[0].contact_id

        self._executor.read(look, done=lambda answer: self._show_duplicates(exclude_id, *answer), context=self,
                            key=("duplicates", id(self)), label="duplicate check")

    def _show_duplicates(self, for_id: str | None, matches: list, name: str | None) -> None:
        if (self.record.id if self.record is not None else None) != for_id:
            return  # another record is shown by now
        self.last_duplicates = matches
        if not matches:
            self.duplicates.hide()
            return
        match = matches[0]
        self.duplicates.match_id = match.contact_id
        self.duplicates.text.setText(f"This looks like an existing contact: <b>{name}</b> ({match.reason}).")
        can_merge = self.record is not None
        self.duplicates.merge_button.setEnabled(can_merge)
        self.duplicates.merge_button.setToolTip("" if can_merge else "Save first to merge")
        self.duplicates.show()

    def merge_into(self, survivor_id: str) -> None:
        """Merge the shown contact into ``survivor_id`` (after asking)."""
        if self.record is None:
            return
        answer = QMessageBox.question(self, "Merge contacts",
                                      "Merge this contact into the existing one? Its activities, deals and "
                                      "tags move over and this record is removed.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        services, duplicate_id = self._services, self.record.id

        def merge():
            services.merge.contacts(survivor_id, duplicate_id)
            return services.contacts.find(survivor_id)

        def merged(survivor) -> None:
            self.show_record(survivor)
            self.status.emit("Contacts merged")
            self.changed.emit()

        self._executor.write(merge, done=merged, context=self, label="merge contacts",
                             failed=lambda exc: QMessageBox.warning(self, "Merge contacts", str(exc)))

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
        service, record_id, name = self._services.entity_service(self.spec.entity), self.record.id, \
            self.record.display_name

        def deleted(_result) -> None:
            self.show_record(None)
            self.status.emit(f"Deleted “{name}”")
            self.changed.emit()

        self._executor.write(lambda: service.delete(record_id), done=deleted, context=self, label="delete",
                             failed=lambda exc: QMessageBox.warning(self, "Delete", str(exc)))

    # -- saving and leaving -------------------------------------------------------------------

    def is_dirty(self) -> bool:
        """The form holds edits that are not saved."""
        return self.form.is_dirty()

    def save(self, then: Callable[[], object] | None = None) -> None:
        """Save the form (Ctrl+S); ``then()`` runs once it is saved."""
        self.form.save(then)

    def confirm_leave(self, then: Callable[[], object]) -> bool:
        """Before showing something else: True to go ahead now. With unsaved edits the user picks
        Save (False now; ``then()`` runs once saved), Discard (edits dropped, True) or Cancel (False)."""
        if not self.is_dirty():
            return True
        what = (self.record.display_name if self.record is not None else f"the new {self.spec.singular.lower()}")
        answer = unsaved.ask_to_save(self, what or self.spec.singular.lower())
        if answer == "discard":
            self.form.load(self.record)
            return True
        if answer == "save":
            self.save(then)
        return False

    def _on_saved(self, record) -> None:
        self.show_record(record)
        self.status.emit(f"Saved “{record.display_name or self.spec.singular}”")
        self.changed.emit()

    def _after_change(self) -> None:
        self._load_related(self.record)
        self.changed.emit()


def confirm(parent: QWidget, title: str, text: str, yes_text: str) -> bool:
    """Ask before an action that cannot be undone here; True when the user agreed."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(yes)
    box.exec()
    return box.clickedButton() is yes


def _created_links(services, result) -> list[tuple[str, str, str, bool | None]]:
    """(entity, id, name, created) of what a lead became; read on the executor's thread."""
    links = []
    for entity, record_id, service in (("contact", result.contact_id, services.contacts),
                                       ("company", result.company_id, services.companies),
                                       ("deal", result.deal_id, services.deals)):
        if record_id:
            found = service.find(record_id)
            name = (found.display_name if found is not None else None) or record_id
            created = (result.company_created if entity == "company" else True) \
                if result.company_created is not None else None
            links.append((entity, record_id, name, created))
    return links


def _conversion_text(links, *, already: bool = False) -> str:
    """The banner after a conversion: every record it made or used, each a link that opens it."""
    def link(entity: str, record_id: str, name: str) -> str:
        return f'<a href="{entity}:{html.escape(record_id)}">{html.escape(name)}</a>'

    if not links:
        return "<b>Converted.</b>"
    if already:
        parts = [f"{entity} {link(entity, rid, name)}" for entity, rid, name, _ in links]
        return "<b>Converted</b> to " + ", ".join(parts) + "."
    created = [f"{entity} {link(entity, rid, name)}" for entity, rid, name, new in links if new]
    reused = [f"{entity} {link(entity, rid, name)}" for entity, rid, name, new in links if not new]
    text = "<b>Lead converted.</b>"
    if created:
        text += " Created " + ", ".join(created) + "."
    if reused:
        text += " Linked to the existing " + ", ".join(reused) + "."
    return text
