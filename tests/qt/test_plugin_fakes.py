"""Small stand-ins that implement the typed seams of ``crm_desktop.ui.plugins.seams``.

:class:`FakeHost` is a :class:`~crm_desktop.ui.plugins.seams.PluginManagerHost` and
:class:`FakeWindow` a :class:`~crm_desktop.ui.plugins.seams.PluginShell`: mypy checks this
file against those protocols (``make typecheck``; see the assignments at the end), and the
records and contributions are the real types (``PluginRecord`` with a ``PluginState``,
``MenuAction``, ``Panel``, ``RecordAction``, ``ManifestMenuEntry``).

Used only where the real class cannot produce the situation cheaply; the adapter, admin
and watcher tests also run against the real PluginHost and MainWindow.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QStackedWidget, QWidget

from crm_desktop.paths import Home
from crm_desktop.plugin_api.contributions import MenuAction, Panel, RecordAction
from crm_desktop.plugin_host.folder_install import FolderInstallPlan
from crm_desktop.plugin_host.installer import PreparedFolderInstall
from crm_desktop.plugin_host.lifecycle import PluginRecord, PluginState
from crm_desktop.plugin_host.manifest import ManifestMenuEntry
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.settings_store import SettingField

if TYPE_CHECKING:
    from crm_desktop.ui.plugins.seams import Disposer, HostListener, PluginManagerHost, PluginShell, RecordActionProvider

# the real contribution types, under the names the tests have always used
FakeMenuAction = MenuAction
FakePanel = Panel
FakeRecordAction = RecordAction


def FakeMenuEntry(title: str, path: str, icon: str | None = None,  # noqa: N802 (named like the others)
                  permissions: list[str] | None = None) -> ManifestMenuEntry:
    """A declared menu entry as the manifest model holds it."""
    return ManifestMenuEntry(title=title, path=path, icon=icon, permissions=permissions or [])


def fake_record(name: str, state: PluginState = PluginState.ACTIVE) -> PluginRecord:
    """A record as the host makes one for a user plugin."""
    return PluginRecord(name=name, version="1.0.0", display_name=name.title(), author="Test Author",
                        description="A plugin for tests", source="user", path=Path("/tmp"), state=state)


@dataclass
class FakePlugin:
    menu_actions: list[MenuAction] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    record_actions: list[RecordAction] = field(default_factory=list)
    declared: list[ManifestMenuEntry] = field(default_factory=list)


class FakeHost:
    """A :class:`PluginManagerHost` whose plugins are :class:`FakePlugin` s (no code, no files)."""

    def __init__(self, plugins: dict[str, FakePlugin], granted: set[str] | None = None):
        self.plugins = plugins
        self.records: dict[str, PluginRecord] = {n: fake_record(n) for n in plugins}
        #: like the real host: passed the checks that need no code and about to load (shown disabled)
        self.eligible: set[str] = set()
        self.granted = granted
        self._listeners: list[HostListener] = []
        self._disposers: dict[str, list[Callable[[], Any]]] = {}
        self.started = True
        self.dev = False
        self.home = Home(Path("/tmp/fake-home"))
        self.policy = Policy()
        self.calls: list[tuple[Any, ...]] = []

    def subscribe(self, listener: HostListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, name: str, what: str) -> None:
        for listener in list(self._listeners):
            listener(name, what)

    def start(self) -> FakeHost:
        self.started = True
        return self

    def allowed(self, name: str, permission: str) -> bool:
        return self.granted is None or permission in self.granted

    def declared_menu(self, name: str) -> list[ManifestMenuEntry]:
        # like the real host: entries of active, failed and about-to-load plugins
        state = self.records[name].state
        if state not in (PluginState.ACTIVE, PluginState.FAILED) and name not in self.eligible:
            return []
        return [e for e in self.plugins[name].declared if all(self.allowed(name, p) for p in e.permissions)]

    def menu_actions(self, name: str) -> list[MenuAction]:
        return list(self.plugins[name].menu_actions)

    def panels(self, name: str) -> list[Panel]:
        return list(self.plugins[name].panels)

    def record_actions(self, name: str, entity: str) -> list[RecordAction]:
        return [a for a in self.plugins[name].record_actions if a.entity == entity]

    def context(self, name: str) -> str:
        return f"ctx:{name}"

    def add_disposer(self, name: str, fn: Callable[[], Any]) -> None:
        self._disposers.setdefault(name, []).append(fn)

    def _run_disposers(self, name: str) -> None:
        for fn in reversed(self._disposers.pop(name, [])):
            fn()

    def guard(self, name: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            self._fail(name, traceback.format_exc())
            return None

    def _fail(self, name: str, error: str) -> None:
        record = self.records[name]
        self._emit(name, "deactivating")
        self._run_disposers(name)
        record.state = PluginState.FAILED
        record.error = error
        self._emit(name, "failed")
        self._emit(name, "state_changed")

    def disable(self, name: str, *, persist: bool = True) -> PluginRecord:
        self.calls.append(("disable", name))
        self._emit(name, "deactivating")
        self._run_disposers(name)
        self.records[name].state = PluginState.DISABLED
        self._emit(name, "state_changed")
        return self.records[name]

    def enable(self, name: str) -> PluginRecord:
        self.calls.append(("enable", name))
        self.records[name].state = PluginState.ACTIVE
        self.records[name].error = None
        self._emit(name, "state_changed")
        self._emit(name, "activated")
        return self.records[name]

    def reload(self, name: str) -> PluginRecord:
        self.calls.append(("reload", name))
        if self.records[name].state is PluginState.ACTIVE:
            self._emit(name, "deactivating")
            self._run_disposers(name)
        self.records[name].state = PluginState.ACTIVE
        self._emit(name, "activated")
        self._emit(name, "state_changed")
        return self.records[name]

    def migrate(self, name: str, *, reread: bool = False) -> None:
        self.calls.append(("migrate", name))

    def forget_data(self, manifest: Any) -> Path | None:
        self.calls.append(("forget_data", manifest.name))
        return None

    def uninstall(self, name: str, drop_data: bool = False) -> None:
        self.calls.append(("uninstall", name, drop_data))
        self._emit(name, "deactivating")
        self._run_disposers(name)
        del self.records[name]
        self._emit(name, "state_changed")

    def install_folder(self, path: Path, *, approve: Callable[[FolderInstallPlan], bool] | None = None
                       ) -> PluginRecord:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    def plan_folder_install(self, path: Path) -> FolderInstallPlan:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    def prepare_folder_install(self, plan: FolderInstallPlan) -> PreparedFolderInstall:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    def finish_folder_install(self, prepared: PreparedFolderInstall) -> PluginRecord:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    def prepare_installed(self, path: Path) -> None:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    def activate_installed(self, path: Path) -> PluginRecord:
        raise NotImplementedError("FakeHost installs nothing; use the real PluginHost (test_plugin_admin_trust)")

    @property
    def loading(self) -> bool:
        return False  # a fake plugin loads at once

    def after_loads(self, fn: Callable[[], None]) -> None:
        fn()

    def settings_schema(self, name: str) -> list[SettingField]:
        return []

    def settings(self, name: str) -> dict[str, Any]:
        return {}

    def set_setting(self, name: str, key: str, value: Any, *, from_text: bool = False) -> Any:
        raise KeyError(key)


class FakeWindow(QMainWindow):
    """A :class:`PluginShell`: just enough main window to host plugin contributions."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = QStackedWidget()
        self.stack.addWidget(QLabel("home"))
        self.setCentralWidget(self.stack)
        self.pages: dict[str, tuple[QWidget, str, QDockWidget | None]] = {}
        self.paths: dict[str, Callable[[], None]] = {}
        self.providers: list[RecordActionProvider] = []
        self._menus: dict[str, QMenu] = {}
        for title in ("File", "Edit", "View", "Tools", "Plugins", "Help"):
            self.menu(title)
        self.status: list[str] = []

    def menu(self, title: str) -> QMenu:
        if title not in self._menus:
            self._menus[title] = self.menuBar().addMenu(title)
        return self._menus[title]

    def add_page(self, key: str, widget: QWidget, title: str, *, icon: QIcon | None = None,
                 area: str = "tab") -> None:
        if area == "dock":
            dock = QDockWidget(title, self)
            dock.setWidget(widget)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.pages[key] = (widget, title, dock)
        else:
            self.stack.addWidget(widget)
            self.pages[key] = (widget, title, None)

    def remove_page(self, key: str) -> None:
        widget, _title, dock = self.pages.pop(key)
        if dock is not None:
            self.removeDockWidget(dock)
            dock.deleteLater()
        else:
            self.stack.removeWidget(widget)
        widget.deleteLater()

    def show_page(self, key: str) -> None:
        widget, _title, dock = self.pages[key]
        if dock is not None:
            dock.show()
        else:
            self.stack.setCurrentWidget(widget)

    def current_page(self) -> str | None:
        current = self.stack.currentWidget()
        return next((key for key, (widget, _t, _d) in self.pages.items() if widget is current), None)

    def register_path(self, path: str, opener: Callable[[], None]) -> Disposer:
        self.paths[path] = opener
        return lambda: self.paths.pop(path, None) and None

    def open_path(self, path: str) -> None:
        self.paths[path]()

    def add_record_action_provider(self, provider: RecordActionProvider) -> Disposer:
        self.providers.append(provider)
        return lambda: self.providers.remove(provider)

    def context_menu(self, entity: str, ids: list[str]) -> QMenu:
        menu = QMenu(self)
        for provider in list(self.providers):
            provider(entity, ids, menu)
        return menu

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        self.status.append(text)


if TYPE_CHECKING:  # mypy proves the stand-ins implement the seams the UI is written against
    _host: PluginManagerHost = FakeHost({})
    _shell: PluginShell = FakeWindow()
