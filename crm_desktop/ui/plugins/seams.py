"""The typed seams between the Qt side of plugins and the rest: what the UI needs of the
plugin host, and what plugins' contributions need of the main window.

Both are :class:`typing.Protocol` s, checked by mypy (``make typecheck``): the real
:class:`~crm_desktop.plugin_host.host.PluginHost` and
:class:`~crm_desktop.ui.shell.MainWindow` implement them, and so do the test stand-ins
in ``tests/qt/test_plugin_fakes.py`` (mypy checks that file too), so a method renamed on
one side fails the type check instead of a ``getattr`` quietly returning ``None``.

* :class:`PluginHostView` is the host as the adapter, the ``--dev`` watcher, the
  offscreen panel check and the settings form see it: the records, the change
  notifications, the contributions of one plugin, the guard that runs plugin code,
  reload and settings.
* :class:`PluginManagerHost` adds what the plugin admin panel does: enable, disable,
  migrate, uninstall and install (in steps: plan on the GUI thread, prepare on the writer,
  finish on the GUI thread).
* :class:`PluginShell` is the main window as plugin contributions see it: menus,
  pages and docks, paths of declared menu entries, record context menus, the status bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, TypeVar

if TYPE_CHECKING:  # types only: the seam costs no import at run time
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QMenu, QWidget

    from crm_desktop.paths import Home
    from crm_desktop.plugin_api.contributions import MenuAction, Panel, RecordAction
    from crm_desktop.plugin_host.folder_install import FolderInstallPlan
    from crm_desktop.plugin_host.installer import PreparedFolderInstall
    from crm_desktop.plugin_host.lifecycle import PluginRecord
    from crm_desktop.plugin_host.manifest import Manifest, ManifestMenuEntry
    from crm_desktop.plugin_host.policy import Policy
    from crm_desktop.plugin_host.settings_store import SettingField

T = TypeVar("T")

#: Undoes one thing built for a plugin (a menu entry, a page, a route); idempotent.
Disposer = Callable[[], None]
#: ``listener(plugin, what)``; ``what`` is activated, deactivating, state_changed or failed.
HostListener = Callable[[str, str], None]
#: ``provider(entity, record_ids, menu)`` adds a plugin's actions to a record context menu.
RecordActionProvider = Callable[[str, list[str], "QMenu"], None]


class PluginHostView(Protocol):
    """The plugin host as the Qt side of plugins reads and drives it."""

    @property
    def records(self) -> Mapping[str, PluginRecord]:
        """Every plugin the host knows, by name."""

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has run."""

    @property
    def dev(self) -> bool:
        """``--dev``: the adapter starts a watcher that reloads plugins whose files change."""

    def start(self) -> object:
        """Discover, check and load the plugins."""

    def subscribe(self, listener: HostListener) -> Callable[[], None]:
        """Call ``listener`` on every change of a plugin; returns the unsubscribe function."""

    def allowed(self, name: str, permission: str) -> bool:
        """Whether plugin ``name`` may use ``permission`` now."""

    def declared_menu(self, name: str) -> Sequence[ManifestMenuEntry]:
        """The manifest menu entries to show for ``name`` now (possibly before its code is imported)."""

    def menu_actions(self, name: str) -> Sequence[MenuAction]:
        """The menu actions an active plugin contributes."""

    def panels(self, name: str) -> Sequence[Panel]:
        """The panels an active plugin contributes."""

    def record_actions(self, name: str, entity: str) -> Sequence[RecordAction]:
        """The context-menu actions an active plugin contributes for ``entity`` records."""

    def context(self, name: str) -> object:
        """The active plugin's ``ctx`` (None when it is not active). The UI never looks inside:
        it hands it unchanged to the plugin's menu and record-action callbacks."""

    def add_disposer(self, name: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when plugin ``name`` is disabled, reloaded, uninstalled or fails."""

    def guard(self, name: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run plugin code: an exception marks ``name`` failed and returns None."""

    def reload(self, name: str) -> PluginRecord:
        """Re-import the plugin's code without restarting."""

    def settings_schema(self, name: str) -> list[SettingField]:
        """The plugin's settings fields, in manifest order."""

    def settings(self, name: str) -> dict[str, Any]:
        """The current values of the plugin's settings."""

    def set_setting(self, name: str, key: str, value: Any, *, from_text: bool = False) -> Any:
        """Check and store one setting; raises with the rule when the value is refused."""


class PluginManagerHost(PluginHostView, Protocol):
    """The plugin host as the plugin admin panel manages it."""

    @property
    def home(self) -> Home:
        """The home whose ``plugins`` folder user plugins are installed into."""

    @property
    def policy(self) -> Policy:
        """The admin policy every install is checked against."""

    def enable(self, name: str) -> PluginRecord:
        """Turn the plugin on now."""

    def disable(self, name: str, *, persist: bool = True) -> PluginRecord:
        """Turn the plugin off and remove what it contributed."""

    def migrate(self, name: str, *, reread: bool = False) -> None:
        """Bring the plugin's own tables to its newest revision (no Qt: runs on the writer thread);
        ``reread``: from the manifest now on disk (before a reload)."""

    def forget_data(self, manifest: Manifest) -> Path | None:
        """Delete an uninstalled plugin's tables (after a backup), settings and data folder (writer thread)."""

    def uninstall(self, name: str, drop_data: bool = False) -> None:
        """Remove a user plugin's folder (and, with ``drop_data``, its tables and settings)."""

    def install_folder(self, path: Path, *, approve: Callable[[FolderInstallPlan], bool] | None = None
                       ) -> PluginRecord:
        """Check, approve, copy and load a plugin folder (all on the calling thread)."""

    def plan_folder_install(self, path: Path) -> FolderInstallPlan:
        """What installing a folder would do (files only: the GUI thread, before the approval);
        raises with the rule when it is refused."""

    def prepare_folder_install(self, plan: FolderInstallPlan) -> PreparedFolderInstall:
        """Copy an approved folder beside its target and migrate its tables (writer thread)."""

    def finish_folder_install(self, prepared: PreparedFolderInstall) -> PluginRecord:
        """Put a prepared folder in place and load it (GUI thread; no database work)."""

    def prepare_installed(self, path: Path) -> None:
        """Migrate the tables of a plugin folder a bundle was just moved into (writer thread)."""

    def activate_installed(self, path: Path) -> PluginRecord:
        """Load a plugin folder the bundle installer has just put in place (GUI thread)."""

    @property
    def loading(self) -> bool:
        """True while a load (enable, reload, install) waits for the writer to publish the plugin's
        synced tables; the plugin's state says how it ended once :meth:`after_loads` calls back."""

    def after_loads(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the GUI thread once no load is in progress (at once when none is)."""


class PluginShell(Protocol):
    """The main window as the Qt plugin adapter builds plugin contributions into it."""

    def menu(self, title: str) -> QMenu:
        """The top-level menu ``title`` (made when new)."""

    def add_page(self, key: str, widget: QWidget, title: str, *, icon: QIcon | None = None,
                 area: str = "tab") -> None:
        """Add a page (``area`` "tab") or a dock (``area`` "dock") under ``key``."""

    def remove_page(self, key: str) -> None:
        """Remove a page added with :meth:`add_page`."""

    def show_page(self, key: str) -> None:
        """Bring a page or dock to the front."""

    def current_page(self) -> str | None:
        """The key of the page on screen."""

    def register_path(self, path: str, opener: Callable[[], None]) -> Disposer:
        """Route a declared menu path such as ``/plugins/sample`` to ``opener``."""

    def open_path(self, path: str) -> None:
        """Open what is registered at ``path``."""

    def add_record_action_provider(self, provider: RecordActionProvider) -> Disposer:
        """Call ``provider`` whenever a record context menu is built."""

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        """A message in the status bar."""
