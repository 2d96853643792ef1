"""The plugin host: discover → validate → resolve → check → migrate → import → activate → contribute.

:class:`PluginHost` is the one object the rest of the app (the Qt adapter, the admin panel,
the command line, the tests) talks to. It is a facade over four parts, one concept each:

* :mod:`.registry` — every plugin found, its state, and its lifecycle: start and stop,
  enable, disable, reload, loading and unloading, failing and hanging;
* :mod:`.hook_calls` — calling plugins' hooks one plugin at a time, each implementation in
  its guard (pluggy would stop at the first exception; we never let it), on the watchdog
  where a hang must not freeze the app, refusing ``@hookimpl`` options the host would ignore,
  reading contributions, forwarding events;
* :mod:`.installer` — installing from a folder or a bundle (plan, prepare, finish) and
  uninstalling;
* :mod:`.plugin_data` — a plugin's tables: migrations, synced tables, dropping them.

No Qt here. Set ``CRM_TRACE_PLUGINS=1`` to log every hook call with its plugin and duration.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, TypeVar

from crm_desktop.domain.enums import Role
from crm_desktop.paths import Home
from crm_desktop.plugin_api.context import PluginContext
from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host import discovery
from crm_desktop.plugin_host.folder_install import FolderInstallPlan
from crm_desktop.plugin_host.hook_calls import UNSUPPORTED_HOOKIMPL_OPTIONS
from crm_desktop.plugin_host.installer import PluginInstaller, PreparedFolderInstall
from crm_desktop.plugin_host.lifecycle import PluginRecord, PluginState
from crm_desktop.plugin_host.manifest import Manifest, ManifestMenuEntry
from crm_desktop.plugin_host.permissions import DEFAULT_LOCAL_ROLE
from crm_desktop.plugin_host.plugin_data import PluginData
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.registry import Listener, PluginRegistry, Writer, core_work
from crm_desktop.plugin_host.settings_store import SettingField, SettingsStore, schema_fields
from crm_desktop.plugin_host.tripwire import Tripwire, install_tripwire

__all__ = ["Listener", "PluginHost", "Writer"]

_AUTO: Any = object()
T = TypeVar("T")


class PluginHost:
    """Loads, runs and unloads plugins for one core and home (see the module docstring).

    ``policy`` defaults to the home's effective policy; ``role`` to the local
    user's role (admin until login lands). ``bundled_dir`` / ``system_dir``
    override where bundled and system plugins are looked for (None: none);
    ``extra_folders`` adds single plugin folders (``plugin check PATH``).
    ``tripwire``: True (the default) registers each active plugin with the
    process's runtime tripwire, which blocks plain network, subprocess and
    stray file access the plugin was not granted; ``"log"`` only records
    such events; False leaves the plugins unwatched (see tripwire.py).
    """

    #: pluggy options a plugin's ``@hookimpl`` may not use (refused at load; see :mod:`.hook_calls`)
    UNSUPPORTED_HOOKIMPL_OPTIONS = UNSUPPORTED_HOOKIMPL_OPTIONS

    def __init__(self, core: Any, home: Home, *, policy: Policy | None = None, dev: bool = False,
                 role: Role | str | None = None, bundled_dir: Path | None = _AUTO,
                 system_dir: Path | None = _AUTO, extra_folders: tuple[Path, ...] = (),
                 api_client: Any = None, tripwire: bool | str = True):
        self.core = core
        self.home = home
        self.dev = dev
        policy_error: str | None = None
        if policy is None:
            from crm_desktop.plugin_host.policy import PolicyError, load_home_policy

            try:
                policy = load_home_policy(home)
            except PolicyError as exc:
                # Fail closed: an unreadable admin policy must not mean "anything goes".
                policy_error = str(exc)
                policy = Policy()
        bundled = discovery.bundled_plugins_dir() if bundled_dir is _AUTO else bundled_dir
        system = discovery.system_plugins_dir(policy) if system_dir is _AUTO else system_dir
        wire: Tripwire | None = None
        if tripwire:
            wire = install_tripwire()
            # The mode is process-wide: the last host asking for "log" only switches enforcement off.
            wire.mode = "log" if tripwire == "log" else "enforce"
        self._settings = SettingsStore(Path(home.root) / "plugin-settings")
        self._data = PluginData(core, home, self._settings)
        self._registry = PluginRegistry(
            core, home, policy=policy, policy_error=policy_error,
            role=Role(role) if role is not None else DEFAULT_LOCAL_ROLE,
            roots=[("bundled", bundled), ("system", system), ("user", Path(home.plugins_dir))],
            extra=tuple(Path(p) for p in extra_folders), api_client=api_client, tripwire=wire,
            settings=self._settings, data=self._data)
        self._hooks = self._registry.hooks
        self._installer = PluginInstaller(self._registry)

    # ------------------------------------------------------------------ shared state

    @property
    def policy(self) -> Policy:
        """The admin policy every load and install is checked against (a sync may replace it)."""
        return self._registry.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self._registry.policy = policy

    @property
    def policy_error(self) -> str | None:
        """Why the home's policy could not be read (then every plugin is blocked), or None."""
        return self._registry.policy_error

    @property
    def role(self) -> Role:
        """The signed-in user's role (what each plugin may do depends on it)."""
        return self._registry.role

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has run (and :meth:`stop` not since)."""
        return self._registry.started

    @property
    def loads_code(self) -> bool:
        """False after ``start(load=False)``: management commands never run plugin code."""
        return self._registry.loads_code

    @property
    def tripwire(self) -> Tripwire | None:
        """The process's runtime tripwire the plugins are registered with (None: off)."""
        return self._registry.tripwire

    # ------------------------------------------------------------------ reading

    @property
    def records(self) -> dict[str, PluginRecord]:
        """Every plugin found, by name, in discovery order."""
        return self._registry.records

    @property
    def failures(self) -> list[PluginRecord]:
        """Plugins whose code raised (state ``failed``), each with its traceback in ``error``."""
        return [r for r in self.records.values() if r.state is PluginState.FAILED]

    def record(self, name: str) -> PluginRecord:
        """The record of ``name``; :class:`PluginError` naming the known plugins if there is none."""
        return self._registry.record(name)

    def context(self, name: str) -> PluginContext | None:
        """The active plugin's ``ctx`` (None when it is not active)."""
        return self._registry.context(name)

    def module_ref(self, name: str) -> "weakref.ref[ModuleType] | None":
        """A weak reference to the active plugin's main module (leak checks)."""
        return self._registry.module_ref(name)

    def allowed(self, name: str, permission: str) -> bool:
        """True if plugin ``name`` may use ``permission`` now (manifest ∩ policy ∩ role)."""
        return self._registry.allowed(name, permission)

    def declared_menu(self, name: str) -> list[ManifestMenuEntry]:
        """The manifest's menu entries the user may see (available before the code is imported)."""
        return self._registry.declared_menu(name)

    def settings_schema(self, name: str) -> list[SettingField]:
        """The plugin's settings fields (name, type, required, secret, description, default)."""
        return schema_fields(self._manifest(name))

    @core_work
    def settings(self, name: str) -> dict[str, Any]:
        """Current values of the plugin's settings (defaults filled in; secrets from the keyring)."""
        return self._settings.values(self._manifest(name))

    @core_work
    def set_setting(self, name: str, key: str, value: Any, *, from_text: bool = False) -> Any:
        """Validate (type, required, enum) and store one setting; returns the stored value."""
        return self._settings.set(self._manifest(name), key, value, from_text=from_text)

    def _manifest(self, name: str) -> Manifest:
        return self._registry.manifest(name)

    def set_role(self, role: Role | str) -> None:
        """The signed-in user's role changed: recompute what each plugin may do."""
        self._registry.set_role(role)

    # ------------------------------------------------------------------ listeners and ctx.ui

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(plugin, what)`` for what in activated, deactivating, state_changed, failed."""
        return self._registry.subscribe(listener)

    def set_ui_factory(self, factory: Callable[[str], Any] | None) -> None:
        """How ``ctx.ui`` is made for a plugin (the desktop app installs its Qt one; None: no window,
        ``ctx.ui`` raises NotConfigured). ``factory(name)`` is called on a plugin's first use of ``ctx.ui``;
        the object's ``close()``, if any, runs when the plugin unloads."""
        self._registry.set_ui_factory(factory)

    def add_disposer(self, name: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when plugin ``name`` is disabled, reloaded, uninstalled or fails."""
        self._registry.add_disposer(name, fn)

    # ------------------------------------------------------------------ lifecycle

    def set_writer(self, writer: Writer | None) -> None:
        """Where a load's database work runs in the app: the UI's writer thread (the window's
        ``DataExecutor``; ``done``/``failed`` come back on the GUI thread). With one, loading a plugin
        (start, enable, reload, install) runs its own migrations on the writer first unless the
        admin panel's writer just did (:meth:`migrate`), importing it only once they succeeded; a
        plugin with synced models is then imported here, its synced tables published on the writer,
        and it is activated here when the writer answers. Until then the plugin has no ctx and none
        of its hooks is called, and :attr:`loading` is True. None (the default: the command line,
        headless hosts): every load is over when the call returns."""
        self._registry.set_writer(writer)

    @property
    def loading(self) -> bool:
        """True while a load waits for the writer (see :meth:`set_writer`)."""
        return self._registry.loading

    def after_loads(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once no load is in progress (at once when none is): e.g. to say how an enable ended."""
        self._registry.after_loads(fn)

    def start(self, *, load: bool = True) -> "PluginHost":
        """Discover, validate, resolve, migrate, import and activate every enabled plugin.

        ``load=False`` stops before any plugin code runs (``plugin list``, ``enable``,
        ``disable``, ``uninstall``, ``config``): plugins that would load are shown as
        ``enabled``, and nothing of theirs is imported, migrated or called."""
        self._registry.start(load=load)
        return self

    def stop(self) -> None:
        """Deactivate every plugin (their enabled state is kept) and stop forwarding events."""
        self._registry.stop()

    def enable(self, name: str) -> PluginRecord:
        """Enable (persisted) and activate ``name``; returns its record (which may say why it cannot run)."""
        return self._registry.enable(name)

    def disable(self, name: str, *, persist: bool = True) -> PluginRecord:
        """Deactivate ``name`` (and what depends on it); ``persist`` remembers it across starts."""
        return self._registry.disable(name, persist=persist)

    def reload(self, name: str) -> PluginRecord:
        """Unload ``name`` (and its dependents) completely and load it again from its folder."""
        return self._registry.reload(name)

    # ------------------------------------------------------------------ calling plugin code

    def guard(self, name: str, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run ``fn`` in plugin ``name``'s guard: on an exception the plugin is marked failed, None returned."""
        return self._hooks.guard(name, what, fn, *args, **kwargs)

    def menu_actions(self, name: str) -> list[MenuAction]:
        """The plugin's menu actions the user may see (guarded; [] if it fails)."""
        return self._hooks.menu_actions(name)

    def panels(self, name: str) -> list[Panel]:
        """The plugin's panels (guarded; [] if it fails)."""
        return self._hooks.panels(name)

    def record_actions(self, name: str, entity: str) -> list[RecordAction]:
        """The plugin's context-menu actions for ``entity`` records (guarded; [] if it fails)."""
        return self._hooks.record_actions(name, entity)

    def cli_commands(self, name: str) -> list[CliCommand]:
        """The subcommands the plugin adds to ``crm-desktop`` (guarded; [] if it fails)."""
        return self._hooks.cli_commands(name)

    # ------------------------------------------------------------------ plugin data

    @core_work
    def migrate(self, name: str, *, reread: bool = False) -> None:
        """Bring plugin ``name``'s own tables to its newest revision without importing its code.

        This is the slow part of :meth:`enable` and :meth:`reload` (the plugin's revisions in one
        write transaction); it touches no Qt, so the admin panel runs it on its writer thread
        first, and ``enable`` / ``reload`` then find nothing left to migrate — they do not even
        read the plugin's migration version again (:class:`~.plugin_data.PluginData` remembers
        it). ``reread`` migrates what the plugin's folder holds now (its code may have changed: a
        reload), even while the plugin is active. Raises on a failed migration.
        """
        record = self.record(name)
        manifest = record.manifest
        if reread:
            candidate = discovery.inspect_folder(record.path, record.source)
            if candidate.manifest is None:
                return  # the reload itself reports the broken manifest
            manifest = candidate.manifest
        elif name in self._hooks.runtimes:
            return  # active: its tables were migrated when it loaded
        if manifest is None:
            raise PluginError(f"plugin {name!r} has no valid manifest: {record.error}")
        self._data.migrate(manifest, record.path)

    @core_work
    def drop_data(self, manifest: Manifest) -> Path | None:
        """Back up the database, then drop the plugin's tables and version table; returns the backup."""
        return self._data.drop(manifest, list(self.records))

    @core_work
    def forget_data(self, manifest: Manifest) -> Path | None:
        """Delete an uninstalled plugin's data: its tables (after a backup, :meth:`drop_data`), its
        settings and its data folder; returns the backup. No Qt and no plugin code: the admin panel
        runs it on its writer thread after ``uninstall(name, drop_data=False)``."""
        return self._data.forget(manifest, list(self.records))

    # ------------------------------------------------------------------ installing

    def plan_folder_install(self, path: Path) -> FolderInstallPlan:
        """What installing the folder ``path`` would do; :class:`PluginError` naming the rule if it is refused.

        The same rules as a bundle: the policy's block and allow lists, no
        downgrade, and under ``requireSignature`` no unsigned code outside
        ``allowUnsignedFrom`` (see :mod:`crm_desktop.plugin_host.folder_install`).
        Reads files only (the admin panel asks it on the GUI thread, before its approval dialog).
        """
        return self._installer.plan_folder_install(path)

    def prepare_folder_install(self, plan: FolderInstallPlan) -> PreparedFolderInstall:
        """Step 2 of an approved folder install: copy the folder beside its target and migrate its
        tables. No plugin code, no Qt (the admin panel runs it on its writer thread); a failed
        migration is kept for :meth:`finish_folder_install` to show."""
        return self._installer.prepare_folder_install(plan)

    def finish_folder_install(self, prepared: PreparedFolderInstall) -> PluginRecord:
        """Step 3: unload the installed version, put the prepared folder in place and load it
        (plugin code and Qt contributions: the GUI thread). Asks the database nothing."""
        return self._installer.finish_folder_install(prepared)

    def install_folder(self, path: Path, *, approve: Callable[[FolderInstallPlan], bool] | None = None
                       ) -> PluginRecord:
        """Install a plugin folder: check it (:meth:`plan_folder_install`), ask ``approve(plan)``, copy, activate.

        A folder outside ``<home>/plugins`` is copied there first; a newer copy
        of an installed user plugin replaces it (reloaded live). Raises
        :class:`PluginError`, changing nothing, when the plan is refused or
        ``approve`` returns False.
        """
        return self._installer.install_folder(path, approve=approve)

    def prepare_installed(self, path: Path) -> None:
        """Migrate the tables of a plugin folder the bundle installer has just put in place under
        ``<home>/plugins`` (no plugin code, no Qt: the admin panel's writer step before
        :meth:`activate_installed`). Raises :class:`PluginError` if the migration failed."""
        self._installer.prepare_installed(path)

    def activate_installed(self, path: Path) -> PluginRecord:
        """Load a plugin folder the bundle installer has just put in place under ``<home>/plugins``.

        The bundle was verified against the policy before it was extracted;
        the usual load-time checks (policy, signature record, file list) still
        run before any of its code does.
        """
        return self._installer.activate_installed(path)

    def uninstall(self, name: str, drop_data: bool = False) -> None:
        """Remove a user plugin's folder; keep its tables and settings unless ``drop_data``
        (then the database is backed up first and its tables dropped)."""
        self._installer.uninstall(name, drop_data=drop_data)
