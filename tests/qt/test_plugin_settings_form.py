"""The settings form generated from a manifest schema: the right editors, inline errors, secrets to the keyring."""

from __future__ import annotations

import json

import keyring
import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.settings_store import secret_service
from crm_desktop.ui.settings_form import SettingsDialog, SettingsForm

SCHEMA = {
    "apiKey": {"type": "string", "required": True, "secret": True, "description": "API key for the service"},
    "endpoint": {"type": "string", "default": "https://api.example.com", "description": "Base URL"},
    "batchSize": {"type": "integer", "default": 50, "description": "Records per request"},
    "threshold": {"type": "number", "default": 0.5},
    "notify": {"type": "boolean", "default": True},
    "region": {"type": "string", "enum": ["eu", "us"], "required": True},
}


def write_plugin(folder, name="configured", schema=SCHEMA):
    path = folder / name
    path.mkdir(parents=True)
    (path / "plugin.json").write_text(json.dumps({
        "name": name, "version": "1.0.0", "displayName": "Configured", "main": "plugin.py",
        "settings": {"configurable": True, "schema": schema},
    }))
    (path / "plugin.py").write_text("")
    return path


@pytest.fixture
def host(core, home):
    write_plugin(home.plugins_dir)
    h = PluginHost(core, home)
    h.start()
    yield h
    h.stop()


def test_form_has_one_fitting_editor_per_field(qtbot, host):
    form = SettingsForm(host, "configured")
    qtbot.addWidget(form)
    editors = {name: row.editor for name, row in form.rows.items()}
    assert list(editors) == list(SCHEMA)
    assert isinstance(editors["apiKey"], QLineEdit)
    assert editors["apiKey"].echoMode() == QLineEdit.EchoMode.Password
    assert editors["endpoint"].text() == "https://api.example.com"
    assert isinstance(editors["batchSize"], QSpinBox) and editors["batchSize"].value() == 50
    assert isinstance(editors["threshold"], QDoubleSpinBox)
    assert isinstance(editors["notify"], QCheckBox) and editors["notify"].isChecked()
    assert isinstance(editors["region"], QComboBox)
    assert [editors["region"].itemText(i) for i in range(editors["region"].count())] == ["eu", "us"]


def test_save_stores_values_and_puts_the_secret_in_the_keyring(qtbot, host, memory_keyring, home):
    dialog = SettingsDialog(host, "configured")
    qtbot.addWidget(dialog)
    form = dialog.form
    form.rows["apiKey"].editor.setText("s3cret-token")
    form.rows["batchSize"].editor.setValue(120)
    form.rows["region"].editor.setCurrentIndex(1)
    form.rows["notify"].editor.setChecked(False)
    assert form.save()

    assert keyring.get_password(secret_service("configured"), "apiKey") == "s3cret-token"
    settings = host.settings("configured")
    assert settings["batchSize"] == 120 and settings["region"] == "us" and settings["notify"] is False
    on_disk = "".join(p.read_text() for p in home.root.rglob("*.json"))
    assert "s3cret-token" not in on_disk  # never in a file

    again = SettingsForm(host, "configured")
    qtbot.addWidget(again)
    assert again.rows["apiKey"].editor.text() == ""  # the secret is not shown back
    assert "keyring" in again.rows["apiKey"].editor.placeholderText()
    assert again.rows["batchSize"].editor.value() == 120


def test_required_and_invalid_values_are_reported_inline(qtbot, host):
    form = SettingsForm(host, "configured")
    qtbot.addWidget(form)
    form.show()
    assert not form.save()  # apiKey is required and empty
    assert form.rows["apiKey"].error.isVisible()
    assert form.rows["apiKey"].error.text() == "Required."
    assert not form.rows["batchSize"].error.isVisible()

    def refuse(plugin, key, value):
        raise __import__("crm_desktop.errors").errors.ValidationError(key, value, "must start with https://")

    form.rows["apiKey"].editor.setText("k")
    form.rows["endpoint"].editor.setText("http://plain")
    host_set = host.set_setting
    try:
        host.set_setting = lambda p, k, v: refuse(p, k, v) if k == "endpoint" else host_set(p, k, v)
        assert not form.save()
    finally:
        host.set_setting = host_set
    assert form.rows["endpoint"].error.text() == "'http://plain' is invalid: must start with https://"
    assert not form.rows["apiKey"].error.isVisible()
