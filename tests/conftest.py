"""Fixtures shared by every test: a temporary home, an open core, an in-memory keyring."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from crm_desktop.auth.memory_keyring import MemoryKeyring  # noqa: E402
from crm_desktop.core import Core  # noqa: E402
from crm_desktop.paths import Home  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch):
    """Tests never touch the real OS keyring."""
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    """A fresh, empty crm-desktop home folder; CRM_DESKTOP_HOME points at it."""
    h = Home(tmp_path / "home").ensure()
    monkeypatch.setenv("CRM_DESKTOP_HOME", str(h.root))
    return h


@pytest.fixture
def core(home):
    """An open, migrated database in the temporary home."""
    c = Core.open(home)
    yield c
    c.close()


@pytest.fixture
def services(core):
    return core.services
