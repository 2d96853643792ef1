"""The edit form of one record: inputs from :mod:`entities`, inline validation from the services.

The form does not know the rules: it hands the values to ``create``/``update`` and shows a
:class:`~crm_desktop.errors.ValidationError` beside the field it names, so the UI always
says exactly what the services enforce.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timezone
from typing import Any, Callable, TypeVar

from PySide6.QtCore import QDate, QDateTime, QStringListModel, Qt, QTime, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox, QCompleter, QDateEdit, QDateTimeEdit, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit,
    QPlainTextEdit, QPushButton, QVBoxLayout, QWidget,
)

from crm_desktop.domain.enums import LeadStatus
from crm_desktop.errors import CrmError, ValidationError
from crm_desktop.ui.entities import EntitySpec, FormField
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.theme import named

_Input = TypeVar("_Input", bound=QWidget)


def _aware(value: object) -> datetime:
    """What ``QDateTime.toPython()`` gives (a datetime; the stubs say object), in local time."""
    assert isinstance(value, datetime)
    return value.astimezone()

log = logging.getLogger(__name__)

_NO_DATE = QDate(1900, 1, 1)
#: service field names that an error may use for a form input of another name
_ERROR_ALIASES = {"amount_cents": "amount", "pipeline_id": "stage_id", "name_key": "name"}


class LookupEdit(QLineEdit):
    """Pick a company or contact by typing part of its name (full-text search as you type).

    The search runs on the executor's reader (the newest text replaces a search still waiting);
    the suggestions pop up when its answer comes, if the text is still the one searched for.
    ``search_state`` says what the user sees: "", "searching", "found", "none" or the error.
    """

    def __init__(self, service, parent: QWidget | None = None, *, executor=None):
        super().__init__(parent)
        self._service = service
        self._executor = executor if executor is not None else InlineExecutor()
        self.record_id: str | None = None
        self.search_state = ""
        self._ids: dict[str, str] = {}
        self._model = QStringListModel(self)
        completer = QCompleter(self._model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.setCompleter(completer)
        completer.activated.connect(self._picked)
        self.textEdited.connect(self._search)
        self.setPlaceholderText("type to search…")

    def set_value(self, record_id: str | None, label: str | None) -> None:
        self.record_id = record_id
        self.setText(label or "")

    def suggestions(self) -> list[str]:
        """The names offered for the text typed (what the pop-up lists)."""
        return self._model.stringList()

    def _search(self, text: str) -> None:
        self.record_id = self._ids.get(text)
        if len(text.strip()) < 2:
            self.search_state = ""
            self.setToolTip("")
            return
        service = self._service
        self.search_state = "searching"
        self._executor.read(lambda: [(r.display_name, r.id) for r in service.search(text, limit=15)],
                            done=lambda found: self._found(text, found), failed=self._not_found,
                            context=self, key=("lookup", id(self)), label="lookup search")

    def _found(self, text: str, found: list[tuple[str, str]]) -> None:
        if self.text() != text:
            return  # typed on meanwhile: a newer search is on its way
        self._ids = dict(found)
        self._model.setStringList(list(self._ids))
        self.record_id = self._ids.get(text)
        self.search_state = "found" if found else "none"
        self.setToolTip("" if found else f"Nothing matches “{text}”")
        if found and self.hasFocus():
            self.completer().setCompletionPrefix(text)
            self.completer().complete()

    def _not_found(self, exc: BaseException) -> None:
        self.search_state = f"Search failed: {exc}"
        self.setToolTip(self.search_state)
        log.warning("lookup search failed: %s", exc)

    def _picked(self, text: str) -> None:
        self.record_id = self._ids.get(text)


class RecordForm(QWidget):
    """Inputs for one entity; ``saved(record)`` after a successful create or update.

    Saving runs on the executor's writer thread (a save made while an import holds the database
    waits for it without freezing the window). ``button_bar`` holds Save and Revert; with
    ``own_buttons=False`` the caller places it (the detail panel keeps it outside its scroll area,
    so Save is always on screen).
    """

    saved = Signal(object)
    save_failed = Signal(str)

    def __init__(self, spec: EntitySpec, services, *, executor=None, own_buttons: bool = True,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self._services = services
        self._executor = executor if executor is not None else InlineExecutor()
        self.record = None
        self.saving = False
        self._loading = False
        self._clean: dict[str, Any] = {}
        self.inputs: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.form_error = named(QLabel(wordWrap=True), "FieldError")
        self.form_error.hide()
        layout.addWidget(self.form_error)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        for f in spec.form:
            widget = self._make_input(f)
            self.inputs[f.name] = widget
            error = named(QLabel(wordWrap=True), "FieldError")
            error.hide()
            self.errors[f.name] = error
            box = QVBoxLayout()
            box.setSpacing(2)
            box.addWidget(widget)
            box.addWidget(error)
            form.addRow(f.label + (" *" if f.required else ""), box)
        layout.addLayout(form)
        self.button_bar = named(QFrame(), "FormButtonBar")
        buttons = QHBoxLayout(self.button_bar)
        buttons.setContentsMargins(0, 6, 0, 0)
        self.state_label = named(QLabel(), "Muted")  # "Saving…", "Saved 14:03", "Unsaved changes"
        buttons.addWidget(self.state_label, 1)
        self.cancel_button = QPushButton("Revert")
        self.cancel_button.setToolTip("Undo the changes made since the last save")
        self.cancel_button.clicked.connect(lambda: self.load(self.record))
        self.save_button = QPushButton("Save", default=True)
        self.save_button.setProperty("primary", True)
        self.save_button.setToolTip("Save this record (Ctrl+S)")
        self.save_button.clicked.connect(lambda: self.save())
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        if own_buttons:
            layout.addWidget(self.button_bar)
        layout.addStretch(1)  # extra height goes below the form, not between its rows
        self._stage_value: str | None = None
        self._stages_loaded = False
        if any(f.kind == "stage" for f in spec.form):
            self._load_stages()

    def _load_stages(self) -> None:
        pipelines = self._services.pipelines

        def fetch() -> list[tuple[str, tuple[str, str]]]:
            return [(f"{p.name} › {st.name}", (p.id, st.id)) for p in pipelines.all() for st in pipelines.stages(p.id)]

        self._executor.read(fetch, done=self._fill_stages, failed=self._stages_failed, context=self,
                            label="pipeline stages")

    def _fill_stages(self, stages: list[tuple[str, tuple[str, str]]]) -> None:
        name = next(f.name for f in self.spec.form if f.kind == "stage")
        widget = self._input(name, QComboBox)
        was_clean = not self.is_dirty()
        self._loading = True
        try:
            widget.clear()
            for label, data in stages:
                widget.addItem(label, data)
            if not stages:
                widget.addItem("No pipeline has stages", None)
            self._stages_loaded = True
            self._select_stage(widget)
        finally:
            self._loading = False
        if was_clean:
            self._clean = self.values()

    def _stages_failed(self, exc: BaseException) -> None:
        name = next(f.name for f in self.spec.form if f.kind == "stage")
        self._input(name, QComboBox).setItemText(0, "Stages could not be loaded")
        self.errors[name].setText(f"The pipeline stages could not be loaded: {exc}")
        self.errors[name].show()

    def _select_stage(self, widget: QComboBox) -> None:
        if not self._stages_loaded:
            return
        value = self._stage_value
        i = next((n for n in range(widget.count()) if widget.itemData(n) and widget.itemData(n)[1] == value), 0)
        widget.setCurrentIndex(i)

    # -- inputs -------------------------------------------------------------------

    def _input(self, name: str, kind: type[_Input]) -> _Input:
        """The input of field ``name``, which :meth:`_make_input` made a ``kind`` for its field kind."""
        widget = self.inputs[name]
        assert isinstance(widget, kind), (name, type(widget).__name__)
        return widget

    def _make_input(self, f: FormField) -> QWidget:
        widget: QWidget
        if f.kind == "multiline":
            text = QPlainTextEdit()
            text.setFixedHeight(70)
            widget = text
        elif f.kind == "choice":
            choices = QComboBox()
            for choice in f.choices:
                choices.addItem(choice.capitalize(), choice)
            widget = choices
        elif f.kind == "stage":
            stages = QComboBox()  # filled by _load_stages, on the reader
            stages.addItem("Loading stages…", None)
            widget = stages
        elif f.kind in ("company", "contact"):
            widget = LookupEdit(self._services.companies if f.kind == "company" else self._services.contacts,
                                executor=self._executor)
        elif f.kind in ("date", "datetime"):
            moment = QDateEdit() if f.kind == "date" else QDateTimeEdit()
            moment.setCalendarPopup(True)
            moment.setMinimumDate(_NO_DATE)
            moment.setSpecialValueText("—")
            moment.setDisplayFormat("dd MMM yyyy" if f.kind == "date" else "dd MMM yyyy HH:mm")
            widget = moment
        else:
            line = QLineEdit()
            if f.placeholder:
                line.setPlaceholderText(f.placeholder)
            widget = line
        widget.setObjectName(f"field_{f.name}")
        edited = getattr(widget, "textEdited", None) or getattr(widget, "textChanged", None) \
            or getattr(widget, "currentIndexChanged", None) or getattr(widget, "dateTimeChanged", None)
        if edited is not None:
            edited.connect(self._edited)
        return widget

    def _edited(self, *_args) -> None:
        if not self.saving and not self._loading and self._clean:
            self.state_label.setText("Unsaved changes" if self.is_dirty() else "")

    def load(self, record) -> None:
        """Show ``record`` (None: an empty form for a new one)."""
        same = record is not None and self.record is not None and record.id == self.record.id
        self.record = record
        self._loading = True
        try:
            self._fill(record)
        finally:
            self._loading = False
        self._clean = self.values()
        if not same and not self.saving:
            self.state_label.setText("")  # "Saved 14:03" belongs to the record it was said of

    def _fill(self, record) -> None:
        self.clear_errors()
        for f in self.spec.form:
            name = f.name
            value = getattr(record, name, None) if record is not None else None
            if f.kind == "multiline":
                self._input(name, QPlainTextEdit).setPlainText(value or "")
            elif f.kind == "choice":
                combo = self._input(name, QComboBox)
                i = combo.findData(str(value)) if value is not None else 0
                combo.setCurrentIndex(max(0, i))
                if self.spec.entity == "lead" and name == "status":
                    self._lead_status_choices(combo, str(value) if value is not None else None)
            elif f.kind == "stage":
                self._stage_value = value
                self._select_stage(self._input(name, QComboBox))
            elif f.kind == "company":
                self._input(name, LookupEdit).set_value(
                    value, getattr(record, "company_name", None) if record else None)
            elif f.kind == "contact":
                self._input(name, LookupEdit).set_value(value, "…" if value else None)
                if value:
                    self._load_contact_name(name, value)
            elif f.kind == "date":
                self._input(name, QDateEdit).setDate(QDate(value.year, value.month, value.day) if value else _NO_DATE)
            elif f.kind == "datetime":
                self._input(name, QDateTimeEdit).setDateTime(
                    QDateTime(value.astimezone()) if value else QDateTime(_NO_DATE, QTime(0, 0)))
            elif f.kind == "amount":
                self._input(name, QLineEdit).setText(f"{record.amount_cents / 100:.2f}" if record is not None else "")
            elif f.kind == "tags":
                self._input(name, QLineEdit).setText(", ".join(value or ()))
            else:
                self._input(name, QLineEdit).setText("" if value is None else str(value))

    def _load_contact_name(self, name: str, contact_id: str) -> None:
        """The name shown in a contact field: read on the reader, shown if the field still holds it."""
        contacts, widget = self._services.contacts, self._input(name, LookupEdit)

        def fetch() -> str | None:
            found = contacts.find(contact_id)
            return found.display_name if found is not None else None

        def shown(label: str | None) -> None:
            if widget.record_id == contact_id and widget.text() == "…":
                widget.setText(label or "(deleted contact)")

        def failed(exc: BaseException) -> None:
            if widget.record_id == contact_id and widget.text() == "…":
                widget.setText("(name not available)")
                widget.setToolTip(f"The contact's name could not be read: {exc}")

        self._executor.read(fetch, done=shown, failed=failed, context=widget, label="contact name")

    def _lead_status_choices(self, widget: QComboBox, status: str | None) -> None:
        """"Converted" is set by converting the lead: offered only on a converted lead, which keeps it."""
        converted = status == LeadStatus.CONVERTED.value
        model = widget.model()  # a combo box's own model is a QStandardItemModel
        item = model.item(widget.findData(LeadStatus.CONVERTED.value)) if isinstance(model, QStandardItemModel) else None
        if item is not None:
            item.setEnabled(converted)
        widget.setEnabled(not converted)
        widget.setToolTip("A converted lead keeps the status Converted" if converted else
                          "Converted is set by the Convert button")

    def is_dirty(self) -> bool:
        """True when an input differs from what was loaded or last saved."""
        return self.values() != self._clean

    def values(self) -> dict[str, Any]:
        """The form's values as service fields (text is passed as typed; the service validates)."""
        out: dict[str, Any] = {}
        for f in self.spec.form:
            name = f.name
            if f.kind == "multiline":
                out[name] = self._input(name, QPlainTextEdit).toPlainText()
            elif f.kind == "choice":
                out[name] = self._input(name, QComboBox).currentData()
            elif f.kind == "stage":
                stage = self._input(name, QComboBox).currentData()
                if stage:
                    out["pipeline_id"], out["stage_id"] = stage
            elif f.kind in ("company", "contact"):
                out[name] = self._input(name, LookupEdit).record_id
            elif f.kind == "date":
                d = self._input(name, QDateEdit).date()
                out[name] = None if d == _NO_DATE else date(d.year(), d.month(), d.day())
            elif f.kind == "datetime":
                dt = self._input(name, QDateTimeEdit).dateTime()
                out[name] = None if dt.date() == _NO_DATE else _aware(dt.toPython()).astimezone(timezone.utc)
            elif f.kind == "tags":
                out[name] = [t.strip() for t in self._input(name, QLineEdit).text().split(",") if t.strip()]
            else:
                out[name] = self._input(name, QLineEdit).text()
        return out

    # -- saving ---------------------------------------------------------------------

    def save(self, then: Callable[[], object] | None = None) -> None:
        """Create or update on the writer thread. When it is saved, ``saved(record)`` is emitted and
        ``then()`` runs; a validation error is shown beside its field (and ``then`` never runs)."""
        if self.saving:
            return
        self.clear_errors()
        service = self._services.entity_service(self.spec.entity)
        values = self.values()
        record_id = self.record.id if self.record is not None else None

        def write():
            return service.create(**values) if record_id is None else service.update(record_id, **values)

        self.saving = True
        self.save_button.setEnabled(False)
        self.state_label.setText("Saving…")
        self._executor.write(write, done=lambda record: self._saved(record, values, then),
                             failed=self._not_saved, context=self, label=f"save {self.spec.entity}")

    def _saved(self, record, values: dict[str, Any], then: Callable[[], object] | None) -> None:
        self.saving = False
        self.save_button.setEnabled(True)
        edited_meanwhile = self.values() != values  # typed on while the save ran: keep those edits
        if self.record is None or self.record.id == record.id:
            self.record = record
            if not edited_meanwhile:
                self.load(record)
        self.state_label.setText(f"Saved {datetime.now().strftime('%H:%M')}")
        self.saved.emit(record)
        if then is not None:
            then()

    def _not_saved(self, exc: BaseException) -> None:
        self.saving = False
        self.save_button.setEnabled(True)
        self.state_label.setText("Not saved")
        if isinstance(exc, ValidationError):
            self.show_error(exc)
        elif isinstance(exc, CrmError):
            self.form_error.setText(str(exc))
            self.form_error.show()
        else:  # e.g. the database stayed locked for minutes: say so, keep the edits
            log.error("saving %s failed: %s", self.spec.entity, exc)
            self.form_error.setText(f"Could not save: {exc}")
            self.form_error.show()
        self.save_failed.emit(str(exc))

    def show_error(self, exc: ValidationError) -> None:
        name = _ERROR_ALIASES.get(exc.field, exc.field)
        message = f"{exc.rule[0].upper()}{exc.rule[1:]}" if exc.rule else str(exc)
        if name in self.errors:
            self.errors[name].setText(message)
            self.errors[name].show()
            widget = self.inputs[name]
            widget.setProperty("invalid", True)
            widget.style().unpolish(widget)
            widget.style().polish(widget)
            widget.setFocus()
        else:
            self.form_error.setText(f"{exc.field}: {message}")
            self.form_error.show()

    def clear_errors(self) -> None:
        self.form_error.hide()
        for name, label in self.errors.items():
            label.hide()
            widget = self.inputs[name]
            if widget.property("invalid"):
                widget.setProperty("invalid", False)
                widget.style().unpolish(widget)
                widget.style().polish(widget)

    def visible_errors(self) -> dict[str, str]:
        """Field name -> the message shown under it (what the user sees)."""
        shown = {n: l.text() for n, l in self.errors.items() if not l.isHidden()}
        if not self.form_error.isHidden():
            shown["_form"] = self.form_error.text()
        return shown
