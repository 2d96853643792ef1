"""Small stand-ins that follow the agreed host and shell interfaces.

Used only where the real class cannot produce the situation cheaply (or before
it existed); the adapter, admin and watcher tests also run against the real
PluginHost and MainWindow.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QStackedWidget


@dataclass
class FakeMenuEntry:
    title: str
    path: str
    icon: str | None = None
    permissions: list[str] = field(default_factory=list)


@dataclass
class FakeMenuAction:
    id: str
    title: str
    callback: Callable
    menu: str = "Tools"
    shortcut: str | None = None
    icon: Any = None
    permission: str | None = None


@dataclass
class FakePanel:
    id: str
    title: str
    path: str
    factory: Callable
    area: str = "tab"


@dataclass
class FakeRecordAction:
    id: str
    title: str
    entity: str
    callback: Callable
    permission: str | None = None


@dataclass
class FakeRecord:
    name: str
    version: str = "1.0.0"
    display_name: str = ""
    author: str = "Test Author"
    description: str = "A plugin for tests"
    source: str = "user"
    path: Path = Path("/tmp")
    state: str = "active"
    error: str | None = None
    manifest: Any = None
    permissions: list[str] = field(default_factory=list)


@dataclass
class FakePlugin:
    menu_actions: list = field(default_factory=list)
    panels: list = field(default_factory=list)
    record_actions: list = field(default_factory=list)
    declared: list = field(default_factory=list)


class FakeHost:
    """Follows the agreed PluginHost interface closely enough for the Qt adapter."""

    def __init__(self, plugins: dict[str, FakePlugin], granted: set[str] | None = None):
        self.plugins = plugins
        self.records = {n: FakeRecord(n, display_name=n.title()) for n in plugins}
        self.granted = granted
        self._listeners: list = []
        self._disposers: dict[str, list] = {}
        self.started = True
        self.dev = False
        self.calls: list = []

    def subscribe(self, listener):
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, name, what):
        for listener in list(self._listeners):
            listener(name, what)

    def start(self):
        self.started = True

    def allowed(self, name, permission):
        return self.granted is None or permission in self.granted

    def declared_menu(self, name):
        # like the real host: entries of active, failed and about-to-load ("discovered") plugins
        if self.records[name].state not in ("active", "failed", "discovered"):
            return []
        return [e for e in self.plugins[name].declared if all(self.allowed(name, p) for p in e.permissions)]

    def menu_actions(self, name):
        return list(self.plugins[name].menu_actions)

    def panels(self, name):
        return list(self.plugins[name].panels)

    def record_actions(self, name, entity):
        return [a for a in self.plugins[name].record_actions if a.entity == entity]

    def context(self, name):
        return f"ctx:{name}"

    def add_disposer(self, name, fn):
        self._disposers.setdefault(name, []).append(fn)

    def _run_disposers(self, name):
        for fn in reversed(self._disposers.pop(name, [])):
            fn()

    def guard(self, name, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:
            self._fail(name, traceback.format_exc())
            return None

    def _fail(self, name, error):
        record = self.records[name]
        self._emit(name, "deactivating")
        self._run_disposers(name)
        record.state = "failed"
        record.error = error
        self._emit(name, "failed")
        self._emit(name, "state_changed")

    def disable(self, name):
        self.calls.append(("disable", name))
        self._emit(name, "deactivating")
        self._run_disposers(name)
        self.records[name].state = "disabled"
        self._emit(name, "state_changed")

    def enable(self, name):
        self.calls.append(("enable", name))
        self.records[name].state = "active"
        self.records[name].error = None
        self._emit(name, "state_changed")
        self._emit(name, "activated")

    def reload(self, name):
        self.calls.append(("reload", name))
        if self.records[name].state == "active":
            self._emit(name, "deactivating")
            self._run_disposers(name)
        self.records[name].state = "active"
        self._emit(name, "activated")
        self._emit(name, "state_changed")


class FakeWindow(QMainWindow):
    """The agreed MainWindow surface, just enough to host plugin contributions."""

    def __init__(self):
        super().__init__()
        self.stack = QStackedWidget()
        self.stack.addWidget(QLabel("home"))
        self.setCentralWidget(self.stack)
        self.pages: dict[str, Any] = {}
        self.paths: dict[str, Callable] = {}
        self.providers: list = []
        self._menus: dict[str, QMenu] = {}
        for title in ("File", "Edit", "View", "Tools", "Plugins", "Help"):
            self.menu(title)
        self.status: list[str] = []

    def menu(self, title):
        if title not in self._menus:
            self._menus[title] = self.menuBar().addMenu(title)
        return self._menus[title]

    def add_page(self, key, widget, title, *, icon=None, area="tab"):
        if area == "dock":
            dock = QDockWidget(title, self)
            dock.setWidget(widget)
            self.addDockWidget(__import__("PySide6.QtCore").QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.pages[key] = (widget, title, dock)
        else:
            self.stack.addWidget(widget)
            self.pages[key] = (widget, title, None)

    def remove_page(self, key):
        widget, _title, dock = self.pages.pop(key)
        if dock is not None:
            self.removeDockWidget(dock)
            dock.deleteLater()
        else:
            self.stack.removeWidget(widget)
        widget.deleteLater()

    def show_page(self, key):
        widget, _title, dock = self.pages[key]
        if dock is not None:
            dock.show()
        else:
            self.stack.setCurrentWidget(widget)

    def register_path(self, path, opener):
        self.paths[path] = opener
        return lambda: self.paths.pop(path, None)

    def open_path(self, path):
        self.paths[path]()

    def add_record_action_provider(self, provider):
        self.providers.append(provider)
        return lambda: self.providers.remove(provider)

    def context_menu(self, entity, ids):
        menu = QMenu(self)
        for provider in list(self.providers):
            provider(entity, ids, menu)
        return menu

    def show_status(self, text, timeout_ms=4000):
        self.status.append(text)

    def set_sync_state(self, text, online):
        pass
