"""Without a system keyring, reading plugin secrets says so once, in one line naming the fix.

Before: every secret read of every plugin logged the keyring backend's multi-sentence
"No recommended backend was available ..." message, so `make run` on a machine without a
keyring opened with the same paragraph printed again and again.
"""

from __future__ import annotations

import logging

import keyring
import pytest
from keyring.backends import fail

from crm_desktop.plugin_host import settings_store
from crm_desktop.plugin_host.manifest import parse_manifest
from crm_desktop.plugin_host.settings_store import SettingsStore


def _manifest(name: str):
    return parse_manifest({
        "name": name, "version": "1.0.0", "main": "main.py",
        "settings": {"configurable": True, "schema": {
            "apiKey": {"type": "string", "secret": True, "default": "none"},
            "token": {"type": "string", "secret": True}}},
    })


@pytest.fixture
def no_keyring(monkeypatch):
    monkeypatch.setattr(settings_store, "_reported_keyring_problems", set(), raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_unreadable_secrets_are_reported_once_in_one_clear_line(tmp_path, no_keyring, caplog):
    store = SettingsStore(tmp_path)
    caplog.set_level(logging.DEBUG, logger="crm_desktop.plugin_host.settings_store")
    for name in ("first-plugin", "second-plugin"):
        for _ in range(3):
            values = store.values(_manifest(name))
            assert values == {"apiKey": "none", "token": None}  # defaults, nothing invented

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert "\n" not in line
    assert "plugin secrets cannot be read" in line and "keyring" in line
    assert "PYTHON_KEYRING_BACKEND" in line or "install" in line  # it names the way out
    assert "No recommended backend" not in line  # not the backend's raw paragraph
