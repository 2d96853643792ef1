"""The Qt half of the plugin host: turns what plugins contribute into Qt objects.

Plugins never touch the main window. Their hooks return data (``MenuAction``,
``Panel``, ``RecordAction``) and their manifests declare menu entries; this
adapter builds every ``QAction``, page and dock from that data, and records a
disposer for each one with :meth:`PluginHost.add_disposer`, so disabling or
reloading a plugin removes everything it put on screen (DESIGN.md, Plugins).

Everything a plugin's code does on behalf of Qt (a widget factory, a menu
callback, a record action) runs through :meth:`PluginHost.guard`: an exception
marks that plugin failed and is reported in one :class:`PluginFailureDialog`,
while the app and every other plugin carry on.

It lives in ``ui/plugins/`` (with :mod:`.watcher` and :mod:`.check`) because it
is Qt; :mod:`crm_desktop.plugin_host` stays headless and never imports it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QStyle, QVBoxLayout, QWidget, QApplication

from crm_desktop.plugin_host.lifecycle import PluginState
from crm_desktop.ui.plugin_failures import PluginFailure, PluginFailureReporter, summarize
from crm_desktop.ui.plugins.seams import Disposer, PluginHostView, PluginShell

if TYPE_CHECKING:
    from crm_desktop.plugin_api.contributions import Panel
    from crm_desktop.ui.plugins.watcher import PluginWatcher

log = logging.getLogger(__name__)

#: The top-level menu that holds manifest ``menu`` entries.
DECLARED_MENU = "Plugins"
#: states whose plugin keeps its Qt side (a failed one keeps its placeholders)
_SHOWN_STATES = frozenset({PluginState.ACTIVE, PluginState.FAILED, PluginState.ERROR})

def page_key(plugin: str, panel_id: str) -> str:
    """The main-window page key of a plugin panel: ``plugin:<name>:<panel id>``."""
    return f"plugin:{plugin}:{panel_id}"


def state_name(state: PluginState) -> str:
    """``PluginState.ACTIVE`` -> ``"active"`` (what the admin panel shows)."""
    return state.value


# Manifest icons are names ("puzzle-piece"); the desktop theme may know them, and a
# few common ones map onto Qt's standard pixmaps so they never render blank.
_STANDARD_ICONS = {
    "puzzle-piece": QStyle.StandardPixmap.SP_FileDialogContentsView,
    "chart": QStyle.StandardPixmap.SP_FileDialogDetailedView,
    "file": QStyle.StandardPixmap.SP_FileIcon,
    "folder": QStyle.StandardPixmap.SP_DirIcon,
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "refresh": QStyle.StandardPixmap.SP_BrowserReload,
    "save": QStyle.StandardPixmap.SP_DialogSaveButton,
}


def icon_for(spec: QIcon | str | None) -> QIcon | None:
    """A QIcon from a contribution's ``icon`` (QIcon, file path or theme name), or None."""
    if spec is None or spec == "":
        return None
    if isinstance(spec, QIcon):
        return spec
    text = str(spec)
    if "/" in text or "." in text:
        icon = QIcon(text)
        return icon if not icon.isNull() else None
    try:  # the app's own tinted line icons first, so plugin menus match the rest
        from crm_desktop.ui import resources

        if (resources.resources_dir() / "icons" / f"{text}.svg").is_file():
            return resources.icon(text)
    except ImportError:
        pass
    if QIcon.hasThemeIcon(text):
        return QIcon.fromTheme(text)
    standard = _STANDARD_ICONS.get(text)
    if standard is not None and isinstance(QApplication.instance(), QApplication):
        return QApplication.style().standardIcon(standard)
    return None


@dataclass
class _PluginUi:
    """What the adapter built for one plugin (all of it also disposed via the host)."""

    declared: list[Disposer] = field(default_factory=list)
    contributed: list[Disposer] = field(default_factory=list)
    pages: dict[str, QWidget] = field(default_factory=dict)  # page key -> widget
    placeholders: set[str] = field(default_factory=set)      # page keys showing a failure
    declared_signature: list[tuple[str, str, str | None]] = field(default_factory=list)  # the entries shown


class PanelPlaceholder(QWidget):
    """Shown in place of a panel whose factory raised: says which plugin and why."""

    def __init__(self, plugin: str, title: str, error: str | None):
        super().__init__()
        self.setObjectName("PluginPanelPlaceholder")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 32, 32, 32)
        head = QLabel(f"<h3>“{title}” could not be shown</h3>")
        body = QLabel(
            f"The plugin <b>{plugin}</b> raised an error while building this panel and was "
            f"turned off. The rest of the app is unaffected.<br><br>"
            f"<code>{_escape(summarize(error))}</code><br><br>"
            "Open <b>the Plugin manager</b> to see the traceback, reload or disable it."
        )
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(head)
        layout.addWidget(body)
        layout.addStretch(1)
        self.message = body.text()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class QtPluginAdapter(QObject):
    """Builds and removes the Qt side of every plugin in ``window`` as ``host`` reports changes.

    ``window`` is the main window (``crm_desktop.ui.shell.MainWindow``), used only through
    :class:`~crm_desktop.ui.plugins.seams.PluginShell`; ``host`` only through
    :class:`~crm_desktop.ui.plugins.seams.PluginHostView`. With ``host.dev`` set it also
    starts a :class:`~crm_desktop.ui.plugins.watcher.PluginWatcher`.
    """

    def __init__(self, window: PluginShell, host: PluginHostView, *, show_failures: bool = True):
        super().__init__(window if isinstance(window, QObject) else None)
        self.window = window
        self.host = host
        self._ui: dict[str, _PluginUi] = {}
        self._reopen: dict[str, set[str]] = {}  # plugin -> page keys open before a reload
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False
        self.failures = PluginFailureReporter(window if isinstance(window, QWidget) else None)
        self._show_failures = show_failures
        self.watcher: PluginWatcher | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> "QtPluginAdapter":
        """Subscribe to the host, start it if needed and build what active plugins contribute."""
        if self._started:
            return self
        self._started = True
        self._unsubscribe = self.host.subscribe(self._on_host_event)
        # Declared menu entries come from the manifests alone: show them before any
        # plugin code is imported (the host may import lazily, or start below).
        for name in list(self.host.records):
            self._sync_declared(name)
        if not self.host.started:
            self.host.start()
        for name, record in list(self.host.records.items()):
            if record.state is PluginState.ACTIVE and not self._ui_for(name).contributed:
                self._contribute(name)
        if self.host.dev:
            from crm_desktop.ui.plugins.watcher import PluginWatcher

            self.watcher = PluginWatcher(self.host, parent=self)
            self.watcher.start()
        return self

    def stop(self) -> None:
        """Unsubscribe and remove everything built (used when the window closes)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.watcher is not None:
            self.watcher.stop()
        for name in list(self._ui):
            self._dispose(name, declared=True)
        self._started = False

    def _on_host_event(self, name: str, what: str) -> None:
        try:
            if what == "deactivating":
                self._remember_open_pages(name)
                self._dispose(name, declared=False)
            elif what == "activated":
                self._contribute(name)
            elif what == "failed":
                self._dispose(name, declared=False)
                self._report_failure(name)
            elif what == "state_changed":
                self._sync_declared(name)
                record = self.host.records.get(name)
                if record is None or record.state not in _SHOWN_STATES:
                    self._dispose(name, declared=False)
                    self._drop_placeholders(name)
                    if record is None or record.state is PluginState.DISABLED:
                        self._reopen.pop(name, None)  # turned off on purpose: do not reopen later
                if record is None:
                    self._ui.pop(name, None)
        except Exception:  # the adapter must never take the host's notification loop down
            log.exception("building the Qt side of plugin %s after %r failed", name, what)

    # ----------------------------------------------------------------- helpers
    def _ui_for(self, name: str) -> _PluginUi:
        return self._ui.setdefault(name, _PluginUi())

    def _record_disposer(self, name: str, fn: Disposer, *, declared: bool = False) -> None:
        """Keep ``fn`` (idempotent) ourselves and hand it to the host as well."""
        done = False

        def dispose_once() -> None:
            nonlocal done
            if done:
                return
            done = True
            fn()

        ui = self._ui_for(name)
        (ui.declared if declared else ui.contributed).append(dispose_once)
        if not declared:
            # Declared entries exist before activation; the adapter owns those alone.
            try:
                self.host.add_disposer(name, dispose_once)
            except Exception:
                log.debug("host refused a disposer for %s; the adapter keeps it", name, exc_info=True)

    def _dispose(self, name: str, *, declared: bool) -> None:
        ui = self._ui.get(name)
        if ui is None:
            return
        lists = [ui.contributed] + ([ui.declared] if declared else [])
        for disposers in lists:
            while disposers:
                fn = disposers.pop()
                try:
                    fn()
                except Exception:
                    log.exception("removing a Qt object of plugin %s failed", name)
        ui.pages = {k: w for k, w in ui.pages.items() if k in ui.placeholders}

    def _context(self, name: str) -> object:
        return self.host.context(name)

    def _allowed(self, name: str, permission: str | None) -> bool:
        return not permission or self.host.allowed(name, permission)

    def _is_active(self, name: str) -> bool:
        record = self.host.records.get(name)
        return record is not None and record.state is PluginState.ACTIVE

    # ----------------------------------------------------------------- declared menu
    def _sync_declared(self, name: str) -> None:
        """Show the manifest menu entries the host offers for ``name`` now; remove them otherwise.

        The host decides (state, policy, the user's role): it offers the entries of a
        plugin about to load before its code is imported, of an active plugin, and of
        a failed one (whose entry then opens the failure placeholder).
        """
        ui = self._ui_for(name)
        try:
            entries = list(self.host.declared_menu(name)) if name in self.host.records else []
        except Exception:
            log.exception("reading the menu entries of plugin %s failed", name)
            entries = []
        signature = [(e.title, e.path, e.icon) for e in entries]
        if signature == ui.declared_signature and (ui.declared or not entries):
            return
        self._dispose_declared(name)
        ui.declared_signature = signature
        if not entries:
            return
        menu: QMenu = self.window.menu(DECLARED_MENU)
        for entry in entries:
            action = QAction(entry.title, menu)
            action.setObjectName(f"plugin-menu:{name}:{entry.path}")
            action.setData(name)
            icon = icon_for(entry.icon)
            if icon is not None:
                action.setIcon(icon)
            action.setStatusTip(f"{entry.title} (plugin {name})")
            action.triggered.connect(lambda _checked=False, p=entry.path, n=name: self._open_declared(n, p))
            menu.addAction(action)
            self._record_disposer(name, _remove_action(menu, action), declared=True)

    def _dispose_declared(self, name: str) -> None:
        ui = self._ui.get(name)
        if ui is None:
            return
        while ui.declared:
            try:
                ui.declared.pop()()
            except Exception:
                log.exception("removing a menu entry of plugin %s failed", name)
        ui.declared_signature = []

    def _open_declared(self, name: str, path: str) -> None:
        if not self._is_active(name):
            ui = self._ui_for(name)
            if ui.placeholders:  # failed: show why, where the panel would be
                self.window.show_page(sorted(ui.placeholders)[0])
            self._status(f"Plugin {name} is not running; see the Plugin manager")
            return
        try:
            self.window.open_path(path)
        except Exception:
            log.exception("opening %s of plugin %s failed", path, name)
            self._status(f"Nothing to open at {path} (plugin {name})")

    # ----------------------------------------------------------------- contributions
    def _contribute(self, name: str) -> None:
        """Build menu actions, panels and the record-action provider of an active plugin."""
        if not self._is_active(name):
            return
        self._sync_declared(name)
        self._drop_placeholders(name)
        self._add_menu_actions(name)
        if self._is_active(name):
            self._add_panels(name)
        if self._is_active(name):
            self._add_record_provider(name)
        reopen = self._reopen.pop(name, set())
        ui = self._ui_for(name)
        for key in reopen:
            if key in ui.pages:
                self.window.show_page(key)

    def _add_menu_actions(self, name: str) -> None:
        for item in self.host.menu_actions(name) or []:
            if not self._allowed(name, item.permission):
                continue
            menu: QMenu = self.window.menu(item.menu or "Tools")
            action = QAction(item.title, menu)
            action.setObjectName(f"plugin-action:{name}:{item.id}")
            action.setData(name)
            if item.shortcut:
                action.setShortcut(QKeySequence(item.shortcut))
                # the shortcut must work while the action only sits in a closed menu
                action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            icon = icon_for(item.icon)
            if icon is not None:
                action.setIcon(icon)
            action.triggered.connect(
                lambda _checked=False, n=name, cb=item.callback, t=item.title: self._run(n, f"menu action {t!r}", cb)
            )
            menu.addAction(action)
            if isinstance(self.window, QWidget):
                self.window.addAction(action)  # shortcuts fire without opening the menu
            self._record_disposer(name, _remove_action(menu, action, self.window))

    def _run(self, name: str, what: str, callback: Callable[..., Any], *args: Any) -> Any:
        return self.host.guard(name, what, callback, self._context(name), *args)

    def _add_panels(self, name: str) -> None:
        ui = self._ui_for(name)
        for panel in self.host.panels(name) or []:
            key = page_key(name, panel.id)
            area = panel.area
            widget = self.host.guard(name, f"panel {panel.title!r} factory", panel.factory, None)
            if widget is None or not isinstance(widget, QWidget):
                if widget is not None:
                    log.error("panel %s of plugin %s returned %r, not a QWidget", panel.id, name, widget)
                    # a wrong return type is a plugin bug too; the host must hear of it
                    self.host.guard(name, f"panel {panel.title!r} factory", _raise_not_widget, panel.id, widget)
                self._add_placeholder(name, panel, key, area)
                return  # the plugin is failed now; the host disposes what was built
            self.window.add_page(key, widget, panel.title, area=area)
            ui.pages[key] = widget
            self._record_disposer(name, self._page_remover(name, key))
            if panel.path:
                disposer = self.window.register_path(panel.path, functools.partial(self.window.show_page, key))
                self._record_disposer(name, disposer)

    def _page_remover(self, name: str, key: str) -> Disposer:
        def remove() -> None:
            ui = self._ui.get(name)
            if ui is not None:
                ui.pages.pop(key, None)
            self.window.remove_page(key)

        return remove

    def _add_placeholder(self, name: str, panel: Panel, key: str, area: str) -> None:
        """Put a clear message where the panel would be, owned by the adapter, not the plugin."""
        record = self.host.records.get(name)
        placeholder = PanelPlaceholder(name, panel.title, record.error if record is not None else None)
        ui = self._ui_for(name)
        try:
            self.window.remove_page(key)
        except Exception:
            pass
        self.window.add_page(key, placeholder, panel.title, area="tab" if area == "tab" else "dock")
        ui.pages[key] = placeholder
        ui.placeholders.add(key)

    def _drop_placeholders(self, name: str) -> None:
        ui = self._ui.get(name)
        if ui is None:
            return
        for key in list(ui.placeholders):
            ui.pages.pop(key, None)
            try:
                self.window.remove_page(key)
            except Exception:
                log.debug("placeholder %s already gone", key, exc_info=True)
        ui.placeholders.clear()

    def _add_record_provider(self, name: str) -> None:
        def provide(entity: str, record_ids: list[str], menu: QMenu) -> None:
            if not self._is_active(name):
                return
            for item in self.host.record_actions(name, entity) or []:
                if not self._allowed(name, item.permission):
                    continue
                action = menu.addAction(item.title)
                action.setObjectName(f"plugin-record-action:{name}:{item.id}")
                action.setData(name)
                ids = list(record_ids)
                action.triggered.connect(
                    lambda _checked=False, cb=item.callback, t=item.title: self._run(
                        name, f"record action {t!r}", cb, ids
                    )
                )

        self._record_disposer(name, self.window.add_record_action_provider(provide))

    # ----------------------------------------------------------------- reload / failures
    def _remember_open_pages(self, name: str) -> None:
        ui = self._ui.get(name)
        if ui is None:
            return
        current_key = self.window.current_page()
        open_keys = {
            key for key, widget in ui.pages.items()
            if key not in ui.placeholders and (key == current_key or _visible(widget))
        }
        if open_keys:
            self._reopen[name] = open_keys

    def panels_built(self, name: str) -> list[str]:
        """Keys of the pages this plugin's panel factories built (placeholders for failed ones excluded)."""
        ui = self._ui.get(name)
        if ui is None:
            return []
        return sorted(key for key in ui.pages if key not in ui.placeholders)

    def open_pages(self, name: str) -> set[str]:
        """Keys of this plugin's pages that are on screen now."""
        ui = self._ui.get(name)
        if ui is None:
            return set()
        return {key for key, widget in ui.pages.items() if _visible(widget)}

    def _report_failure(self, name: str) -> None:
        record = self.host.records.get(name)
        error = (record.error if record is not None else None) or "no traceback recorded"
        failure = PluginFailure(name, summarize(error), error, record.version if record is not None else "")
        self._status(f"Plugin {name} failed: {failure.summary}")
        if self._show_failures:
            self.failures.report(failure)

    def _status(self, text: str) -> None:
        self.window.show_status(text)


def _visible(widget: QWidget) -> bool:
    try:
        return widget.isVisible()
    except RuntimeError:  # already deleted on the C++ side
        return False


def _remove_action(menu: QMenu, action: QAction, window: object = None) -> Disposer:
    def remove() -> None:
        try:
            menu.removeAction(action)
            if isinstance(window, QWidget):
                window.removeAction(action)
            action.deleteLater()
        except RuntimeError:  # the menu went away with the window
            pass

    return remove


def _raise_not_widget(panel_id: str, value: Any) -> None:
    raise TypeError(f"panel {panel_id!r} factory returned {type(value).__name__}, expected a QWidget")
