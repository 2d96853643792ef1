"""shipped_dir: the one lookup of plugins/, resources/ and migrations/ (checkout and frozen build)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from crm_desktop import paths
from crm_desktop.plugin_host.discovery import bundled_plugins_dir
from crm_desktop.storage.migrate import core_script_location

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", paths.SHIPPED_FOLDERS)
def test_a_checkout_finds_each_folder_beside_the_package(name):
    assert paths.shipped_dir(name) == REPO / name


def test_the_frozen_folder_wins_when_sys_meipass_is_set(tmp_path, monkeypatch):
    for name in paths.SHIPPED_FOLDERS:
        (tmp_path / name).mkdir()
    (tmp_path / "migrations" / "env.py").write_text("")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.shipped_dir("resources") == tmp_path / "resources"
    assert bundled_plugins_dir() == tmp_path / "plugins"
    assert core_script_location() == tmp_path / "migrations"


def test_a_frozen_build_missing_a_folder_falls_back_to_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert paths.shipped_dir("plugins") == REPO / "plugins"


def test_an_unknown_folder_name_is_refused():
    with pytest.raises(ValueError, match="'docs' is not a shipped folder: must be one of plugins, resources"):
        paths.shipped_dir("docs")
