"""A Qt form generated from a plugin's manifest ``settings.schema``.

Each schema field becomes one row: a label (``*`` when required), the editor
that fits its type, the field's description as help text underneath and a
place for the host's validation message. Saving goes through
``host.set_setting(plugin, key, value)`` field by field, so the host stays the
one place that validates values and puts secrets in the keyring; this form
never stores anything itself.

=================  ===========================================
schema type        editor
=================  ===========================================
string             QLineEdit (password echo when ``secret``)
integer            QSpinBox (``minimum``/``maximum`` honoured)
number             QDoubleSpinBox
boolean            QCheckBox
``enum`` given     QComboBox of the allowed values
=================  ===========================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.errors import ValidationError

if TYPE_CHECKING:
    from crm_desktop.plugin_host import settings_store
    from crm_desktop.ui.plugins.seams import PluginHostView

log = logging.getLogger(__name__)

#: What a secret field shows when the keyring already holds a value.
SECRET_KEPT = "stored in the keyring — type to replace"


@dataclass(frozen=True)
class SettingField:
    """One setting as the form needs it (from the host's ``settings_schema``)."""

    name: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    description: str = ""
    default: Any = None
    title: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def label(self) -> str:
        """``title`` if given, else the key made readable: ``apiKey`` -> ``Api key``."""
        if self.title:
            return self.title
        words: list[str] = []
        current = ""
        for ch in self.name.replace("_", " ").replace("-", " "):
            if ch.isupper() and current and not current[-1].isupper():
                words.append(current)
                current = ch
            elif ch == " ":
                if current:
                    words.append(current)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
        text = " ".join(w.lower() for w in words)
        return text[:1].upper() + text[1:]


def form_field(spec: settings_store.SettingField) -> SettingField:
    """The form's view of one field of the host's settings schema."""
    return SettingField(name=spec.name, type=spec.type.lower(), required=spec.required, secret=spec.secret,
                        description=spec.description or "", default=spec.default, title=spec.title or "",
                        choices=tuple(spec.enum or ()))


def schema_for(host: PluginHostView, plugin: str) -> list[SettingField]:
    """The settings fields of ``plugin``, in manifest order."""
    return [form_field(spec) for spec in host.settings_schema(plugin)]


class _Row:
    """The widgets of one field and how to read/write its value."""

    def __init__(self, spec: SettingField, editor: QWidget, read: Callable[[], Any], write: Callable[[Any], None],
                 error: QLabel):
        self.spec = spec
        self.editor = editor
        self.read = read
        self.write = write
        self.error = error
        self.initial: Any = None
        self.secret_stored = False

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        self.editor.style().unpolish(self.editor)
        self.editor.style().polish(self.editor)


class SettingsForm(QWidget):
    """The editable settings of one plugin; :meth:`save` hands changed values to the host."""

    #: emitted after a save in which every field was accepted
    saved = Signal()

    def __init__(self, host: PluginHostView, plugin: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SettingsForm")
        self.host = host
        self.plugin = plugin
        self.fields = schema_for(host, plugin)
        self.rows: dict[str, _Row] = {}

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(2)
        grid.setColumnStretch(1, 1)
        row_index = 0
        for spec in self.fields:
            label = QLabel(spec.label + (' <span style="color:#d93a3a">*</span>' if spec.required else ""))
            label.setObjectName("settingLabel")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setToolTip(f"{spec.name} ({spec.type}{', secret' if spec.secret else ''}"
                             f"{', required' if spec.required else ''})")
            row = self._make_row(spec)
            label.setBuddy(row.editor)
            grid.addWidget(label, row_index, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(row.editor, row_index, 1)
            row_index += 1
            if spec.description or spec.secret:
                note = spec.description
                if spec.secret:
                    sep = "" if not note else (" " if note.rstrip().endswith(".") else ". ")
                    note = note.rstrip() + sep + "Kept in the system keyring, never in a file."
                help_label = QLabel(note)
                help_label.setObjectName("settingHelp")
                help_label.setWordWrap(True)
                grid.addWidget(help_label, row_index, 1)
                row_index += 1
            grid.addWidget(row.error, row_index, 1)
            row_index += 1
            spacer = QFrame()
            spacer.setFixedHeight(8)
            grid.addWidget(spacer, row_index, 0, 1, 2)
            row_index += 1
            self.rows[spec.name] = row

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if not self.fields:
            empty = QLabel(f"{plugin} has no settings.")
            empty.setObjectName("settingHelp")
            layout.addWidget(empty)
        layout.addLayout(grid)
        layout.addStretch(1)
        self.load()

    # -------------------------------------------------------------- editors
    def _make_row(self, spec: SettingField) -> _Row:
        error = QLabel()
        error.setObjectName("settingError")
        error.setWordWrap(True)
        error.setVisible(False)
        if spec.choices:
            combo = QComboBox()
            if not spec.required:
                combo.addItem("—", None)
            for choice in spec.choices:
                combo.addItem(str(choice), choice)

            def write_combo(value: Any, c: QComboBox = combo) -> None:
                index = c.findData(value)
                c.setCurrentIndex(max(index, 0))

            return _Row(spec, combo, combo.currentData, write_combo, error)
        if spec.type == "boolean":
            box = QCheckBox()
            return _Row(spec, box, box.isChecked, lambda v: box.setChecked(bool(v)), error)
        if spec.type == "integer":
            spin = QSpinBox()
            spin.setRange(int(spec.minimum) if spec.minimum is not None else -2_147_483_648,
                          int(spec.maximum) if spec.maximum is not None else 2_147_483_647)
            return _Row(spec, spin, spin.value, lambda v: spin.setValue(int(v or 0)), error)
        if spec.type == "number":
            dspin = QDoubleSpinBox()
            dspin.setDecimals(3)
            dspin.setRange(float(spec.minimum) if spec.minimum is not None else -1e12,
                           float(spec.maximum) if spec.maximum is not None else 1e12)
            return _Row(spec, dspin, dspin.value, lambda v: dspin.setValue(float(v or 0)), error)
        line = QLineEdit()
        line.setClearButtonEnabled(not spec.secret)
        if spec.secret:
            line.setEchoMode(QLineEdit.EchoMode.Password)
        if spec.default not in (None, "") and not spec.secret:
            line.setPlaceholderText(f"default: {spec.default}")
        row = _Row(spec, line, line.text, lambda v: line.setText("" if v is None else str(v)), error)
        # validate as the user types: a required field left empty is flagged at once
        line.textChanged.connect(lambda _t, r=row: self._check_required(r))
        return row

    def _check_required(self, row: _Row) -> None:
        if row.spec.required and not row.read() and not row.secret_stored:
            row.show_error("Required.")
        elif row.error.text() == "Required.":
            row.show_error(None)

    # -------------------------------------------------------------- load / save
    def load(self) -> None:
        """Fill the editors from ``host.settings(plugin)`` (secrets show only whether one is stored)."""
        try:
            values = dict(self.host.settings(self.plugin) or {})
        except Exception:
            log.exception("reading settings of %s failed", self.plugin)
            values = {}
        for name, row in self.rows.items():
            value = values.get(name, row.spec.default)
            if row.spec.secret:
                row.secret_stored = bool(value)
                row.write("")
                if isinstance(row.editor, QLineEdit):
                    row.editor.setPlaceholderText(SECRET_KEPT if row.secret_stored else "not set")
                row.initial = ""
            else:
                if value is not None:
                    row.write(value)
                row.initial = row.read()
            row.show_error(None)

    def values(self) -> dict[str, Any]:
        """What the editors hold now (a blank secret means "keep the stored one")."""
        return {name: row.read() for name, row in self.rows.items()}

    def save(self) -> bool:
        """Send every changed value to the host; show its messages inline. True when all were accepted."""
        ok = True
        for name, row in self.rows.items():
            value = row.read()
            if row.spec.secret and value == "":
                if row.spec.required and not row.secret_stored:
                    row.show_error("Required.")
                    ok = False
                continue  # blank secret: keep what the keyring has
            if isinstance(value, str) and not row.spec.secret:
                value = value.strip()
            if row.spec.required and value in ("", None):
                row.show_error("Required.")
                ok = False
                continue
            if value == row.initial and not row.spec.required:
                row.show_error(None)
                continue
            try:
                self.host.set_setting(self.plugin, name, value)
            except Exception as exc:  # the host's validation message, shown where it belongs
                row.show_error(_message(exc, row.spec))
                ok = False
                continue
            row.show_error(None)
            if row.spec.secret:
                row.secret_stored = True
                row.write("")
                if isinstance(row.editor, QLineEdit):
                    row.editor.setPlaceholderText(SECRET_KEPT)
            else:
                row.initial = value
        if ok:
            self.saved.emit()
        return ok


def _message(exc: Exception, spec: SettingField) -> str:
    """The host's rule for this field; the field is already named by its row, and a secret is never echoed."""
    if isinstance(exc, ValidationError) and exc.rule:
        return f"Invalid: {exc.rule}" if spec.secret else f"{exc.value!r} is invalid: {exc.rule}"
    return str(exc)


class SettingsDialog(QDialog):
    """The Settings… dialog of the plugin admin panel: a header, the form, Save/Cancel."""

    def __init__(self, host: PluginHostView, plugin: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SettingsDialog")
        record = host.records.get(plugin)
        title = (record.display_name if record is not None else "") or plugin
        self.setWindowTitle(f"{title} settings")
        self.form = SettingsForm(host, plugin)

        head = QLabel(f"<b>{title}</b>")
        head.setObjectName("settingsTitle")
        sub = QLabel(f"{plugin} {record.version if record is not None else ''} · fields marked * are required")
        sub.setObjectName("settingHelp")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setObjectName("settingsScroll")
        scroll.setWidget(self.form)

        self.status = QLabel()
        self.status.setObjectName("settingHelp")
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("primaryButton")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self._save)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 14)
        layout.setSpacing(6)
        layout.addWidget(head)
        layout.addWidget(sub)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setObjectName("settingsRule")
        layout.addWidget(line)
        layout.addWidget(scroll, 1)
        layout.addLayout(buttons)
        self.setStyleSheet(FORM_STYLE)
        # as tall as the form needs (up to a screenful), so short forms are not half empty
        self.resize(540, min(self.form.sizeHint().height() + 150, 680))

    def _save(self) -> None:
        if self.form.save():
            self.accept()
        else:
            self.status.setText("Fix the marked fields.")


FORM_STYLE = """
#SettingsDialog { background: #f7f8fb; }
#settingsTitle { font-size: 15px; color: #1d2433; }
#settingLabel { color: #1d2433; font-weight: 600; }
#settingHelp { color: #6b7385; font-size: 11px; }
#settingError { color: #d93a3a; font-size: 11px; font-weight: 600; }
#settingsRule { color: #dde2ea; }
#SettingsForm, #settingsScroll, #settingsScroll > QWidget > QWidget { background: transparent; }
#SettingsForm QLineEdit { background: white; border: 1px solid #cfd5df; border-radius: 5px; padding: 4px 6px;
    min-height: 20px; }
#SettingsForm QLineEdit:focus { border-color: #3b6cf6; }
#SettingsForm QLineEdit[invalid="true"] { border-color: #d93a3a; background: #fff4f4; }
QPushButton { padding: 5px 14px; border: 1px solid #cfd5df; border-radius: 5px; background: white; }
QPushButton:hover { background: #eef1f6; }
QPushButton#primaryButton { background: #3b6cf6; border-color: #3b6cf6; color: white; font-weight: 600; }
QPushButton#primaryButton:hover { background: #2f5bd6; }
"""
