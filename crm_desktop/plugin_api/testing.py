"""pytest fixtures for plugin authors (registered as the ``crm_desktop`` pytest plugin).

In a plugin's tests::

    def test_panel(crm_plugin):
        host, ctx = crm_plugin(Path(__file__).parent.parent)   # the plugin folder
        assert host.records["my-plugin"].state.value == "active"

Each test gets a temporary home with its own database, an in-memory keyring,
and a host that loads only the given plugin folders (no bundled or system
plugins), stopped after the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture
def crm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh, empty crm-desktop home (``crm_desktop.paths.Home``) with an in-memory keyring."""
    import keyring

    from crm_desktop.auth.memory_keyring import MemoryKeyring
    from crm_desktop.paths import Home

    home = Home(tmp_path / "crm-home").ensure()
    monkeypatch.setenv("CRM_DESKTOP_HOME", str(home.root))
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield home
    keyring.set_keyring(previous)


@pytest.fixture
def crm_plugin(crm_home: Any) -> Iterator[Callable[..., tuple[Any, Any]]]:
    """``crm_plugin(folder, *more, role="admin", settings={...})`` -> ``(host, ctx)`` of the first plugin.

    Loads the plugin folder(s) into a headless host on ``crm_home``; ``ctx``
    is the first plugin's :class:`~crm_desktop.plugin_api.PluginContext`
    (None if it did not activate: look at ``host.records[name].error``).
    ``settings`` are stored before the plugins start.
    """
    from crm_desktop.core import Core
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.plugin_host.manifest import read_manifest
    from crm_desktop.plugin_host.settings_store import SettingsStore

    opened: list[tuple[Any, Any]] = []

    def load(folder: Path, *more: Path, role: str = "admin", settings: dict[str, Any] | None = None) -> tuple[Any, Any]:
        folders = tuple(Path(f).resolve() for f in (folder, *more))
        first = read_manifest(folders[0])
        store = SettingsStore(Path(crm_home.root) / "plugin-settings")
        for key, value in (settings or {}).items():
            store.set(first, key, value)
        core = Core.open(crm_home)
        host = PluginHost(core, crm_home, role=role, bundled_dir=None, system_dir=None, extra_folders=folders)
        opened.append((core, host))
        host.start()
        return host, host.context(first.name)

    yield load
    for core, host in reversed(opened):
        host.stop()
        core.close()
