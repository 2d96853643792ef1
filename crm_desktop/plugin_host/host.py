"""The plugin host: discover → validate → resolve → check → migrate → import → activate → contribute.

:class:`PluginHost` owns every plugin's lifecycle, calls each plugin's hooks
one plugin at a time inside a guard (pluggy would stop at the first
exception; we never let it), forwards events, and tells listeners (the Qt
adapter) when to build or remove a plugin's contributions. No Qt here.

Set ``CRM_TRACE_PLUGINS=1`` to log every hook call with its plugin and duration.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sqlite3
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pluggy

from crm_desktop.domain.enums import Role
from crm_desktop.plugin_api import hookspecs
from crm_desktop.plugin_api.context import PluginContext
from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_api.models import bases_of, table_prefix
from crm_desktop.plugin_host import bundle, discovery, integrity, loader, trust
from crm_desktop.plugin_host.discovery import Candidate
from crm_desktop.plugin_host.folder_install import FolderInstallPlan, plan_folder_install
from crm_desktop.plugin_host.import_problems import missing_library, missing_library_message
from crm_desktop.plugin_host.facade import ContextResources, build_context
from crm_desktop.plugin_host.lifecycle import (
    PluginRecord, PluginState, StateFile, leftover_markers, marker_path,
)
from crm_desktop.plugin_host.manifest import (
    Manifest, ManifestMenuEntry, compatibility_problems, missing_python_dependencies,
)
from crm_desktop.plugin_host.permissions import DEFAULT_LOCAL_ROLE, PermissionGate
from crm_desktop.plugin_host.resolver import dependents_of, resolve
from crm_desktop.plugin_host.settings_store import SettingField, SettingsStore, schema_fields
from crm_desktop.plugin_host.tripwire import PluginGrants, Tripwire, install_tripwire
from crm_desktop.plugin_host.watchdog import run_watched

log = logging.getLogger(__name__)
trace_log = logging.getLogger("crm_desktop.plugin_host.trace")

TRACE_ENV = "CRM_TRACE_PLUGINS"
TIMEOUT_HINT = "CRM_DESKTOP_PLUGIN_TIMEOUT, default 10 s"
_AUTO: Any = object()
_FAILED: Any = object()  # a guarded call raised

Listener = Callable[[str, str], None]


def _core_work(method: Callable) -> Callable:
    """The host's own file and database work (markers, migrations, copies, settings) runs as the core:
    the tripwire does not pin it on a plugin even when plugin code (e.g. the plugin's own tests) called
    the host. Plugin hooks the host calls from inside are still attributed to their plugin."""

    @functools.wraps(method)
    def run(self: "PluginHost", *args: Any, **kwargs: Any) -> Any:
        if self._tripwire is None:
            return method(self, *args, **kwargs)
        with self._tripwire.core_call():
            return method(self, *args, **kwargs)

    return run


@dataclass
class _Runtime:
    """What exists only while a plugin is loaded; dropped whole on unload."""

    module: ModuleType
    ctx: PluginContext
    resources: ContextResources
    impls: dict[str, Any]
    disposers: list[Callable[[], Any]] = field(default_factory=list)
    #: the plugin's ``ctx.ui``, made on first use
    ui: Any = None


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

    def __init__(self, core: Any, home: Any, *, policy: Any = None, dev: bool = False,
                 role: Role | str | None = None, bundled_dir: Path | None = _AUTO,
                 system_dir: Path | None = _AUTO, extra_folders: tuple[Path, ...] = (),
                 api_client: Any = None, tripwire: bool | str = True):
        self.core = core
        self.home = home
        self.dev = dev
        self.role = Role(role) if role is not None else DEFAULT_LOCAL_ROLE
        self.policy_error: str | None = None
        if policy is None:
            from crm_desktop.plugin_host.policy import Policy, PolicyError, load_home_policy

            try:
                policy = load_home_policy(home)
            except PolicyError as exc:
                # Fail closed: an unreadable admin policy must not mean "anything goes".
                self.policy_error = str(exc)
                policy = Policy()
        self.policy = policy
        self._bundled_dir = discovery.bundled_plugins_dir() if bundled_dir is _AUTO else bundled_dir
        self._system_dir = discovery.system_plugins_dir(policy) if system_dir is _AUTO else system_dir
        self._extra = tuple(Path(p) for p in extra_folders)
        self._api_client = api_client
        self._ui_factory: Callable[[str], Any] | None = None
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._spec_names = {n for n in dir(hookspecs) if n.startswith("crm_")}
        self._records: dict[str, PluginRecord] = {}
        self._eligible: set[str] = set()  # passed the checks that need no code, not loaded yet
        self._runtime: dict[str, _Runtime] = {}
        self._listeners: list[Listener] = []
        self._subscriptions: list[tuple[str, str, Callable]] = []
        self._lock = threading.RLock()
        self._unsubscribe_bus: Callable[[], None] | None = None
        self._state = StateFile(Path(home.root))
        self._settings = SettingsStore(Path(home.root) / "plugin-settings")
        self._markers_dir = Path(home.plugin_data_dir)
        self._trace = os.environ.get(TRACE_ENV, "") not in ("", "0")
        self._tripwire: Tripwire | None = None
        if tripwire:
            self._tripwire = install_tripwire()
            # The mode is process-wide: the last host asking for "log" only switches enforcement off.
            self._tripwire.mode = "log" if tripwire == "log" else "enforce"
        self.started = False
        #: False after ``start(load=False)``: management commands never run plugin code
        self.loads_code = True

    # ------------------------------------------------------------------ reading

    @property
    def records(self) -> dict[str, PluginRecord]:
        """Every plugin found, by name, in discovery order."""
        return self._records

    @property
    def failures(self) -> list[PluginRecord]:
        """Plugins whose code raised (state ``failed``), each with its traceback in ``error``."""
        return [r for r in self._records.values() if r.state is PluginState.FAILED]

    def record(self, name: str) -> PluginRecord:
        """The record of ``name``; :class:`PluginError` naming the known plugins if there is none."""
        try:
            return self._records[name]
        except KeyError:
            known = ", ".join(sorted(self._records)) or "none"
            raise PluginError(f"no plugin named {name!r} (plugins: {known})") from None

    def context(self, name: str) -> PluginContext | None:
        """The active plugin's ``ctx`` (None when it is not active)."""
        rt = self._runtime.get(name)
        return rt.ctx if rt else None

    def module_ref(self, name: str) -> "weakref.ref[ModuleType] | None":
        """A weak reference to the active plugin's main module (leak checks)."""
        rt = self._runtime.get(name)
        return weakref.ref(rt.module) if rt else None

    def allowed(self, name: str, permission: str) -> bool:
        """True if plugin ``name`` may use ``permission`` now (manifest ∩ policy ∩ role)."""
        record = self._records.get(name)
        if record is None or record.manifest is None:
            return False
        return self._gate(record.manifest).allowed(permission)

    def declared_menu(self, name: str) -> list[ManifestMenuEntry]:
        """The manifest's menu entries the user may see (available before the code is imported)."""
        record = self._records.get(name)
        if record is None or record.manifest is None:
            return []
        # eligible = passed every check that needs no code and is about to load: its entries
        # show before the import (the Qt adapter builds them on the first state_changed)
        if record.state not in (PluginState.ACTIVE, PluginState.FAILED) and name not in self._eligible:
            return []
        return [e for e in record.manifest.menu if all(self.allowed(name, p) for p in e.permissions)]

    def settings_schema(self, name: str) -> list[SettingField]:
        """The plugin's settings fields (name, type, required, secret, description, default)."""
        return schema_fields(self._manifest(name))

    @_core_work
    def settings(self, name: str) -> dict[str, Any]:
        """Current values of the plugin's settings (defaults filled in; secrets from the keyring)."""
        return self._settings.values(self._manifest(name))

    @_core_work
    def set_setting(self, name: str, key: str, value: Any, *, from_text: bool = False) -> Any:
        """Validate (type, required, enum) and store one setting; returns the stored value."""
        return self._settings.set(self._manifest(name), key, value, from_text=from_text)

    def _manifest(self, name: str) -> Manifest:
        record = self.record(name)
        if record.manifest is None:
            raise PluginError(f"plugin {name!r} has no valid manifest: {record.error}")
        return record.manifest

    # ------------------------------------------------------------------ listeners

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(plugin, what)`` for what in activated, deactivating, state_changed, failed."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _on_main_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the GUI thread through the one dispatcher the app installed on the event bus
        (inline without a GUI): listeners build Qt objects and plugins' hooks may touch Qt."""
        events = getattr(self.core, "events", None)
        if events is not None and hasattr(events, "call_on_main_thread"):
            events.call_on_main_thread(fn)
        else:
            fn()

    def _notify(self, name: str, what: str) -> None:
        self._on_main_thread(lambda: self._notify_now(name, what))

    def _notify_now(self, name: str, what: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, what)
            except Exception:  # a listener's bug must not stop the lifecycle
                log.exception("plugin host listener %r failed on %s %s", listener, name, what)

    def set_ui_factory(self, factory: Callable[[str], Any] | None) -> None:
        """How ``ctx.ui`` is made for a plugin (the desktop app installs its Qt one; None: no window,
        ``ctx.ui`` raises NotConfigured). ``factory(name)`` is called on a plugin's first use of ``ctx.ui``;
        the object's ``close()``, if any, runs when the plugin unloads."""
        self._ui_factory = factory

    def _plugin_ui(self, name: str) -> Any:
        rt = self._runtime.get(name)
        factory = self._ui_factory
        if rt is None or factory is None:
            return None
        if rt.ui is None:
            rt.ui = factory(name)
            close = getattr(rt.ui, "close", None)
            if callable(close):
                rt.disposers.insert(0, close)  # last: the plugin's own disposers may still use ctx.ui
        return rt.ui

    def add_disposer(self, name: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` when plugin ``name`` is disabled, reloaded, uninstalled or fails."""
        rt = self._runtime.get(name)
        if rt is None:
            log.warning("disposer for inactive plugin %s run at once", name)
            self._dispose_one(name, fn)
            return
        rt.disposers.append(fn)

    # ------------------------------------------------------------------ start / stop

    def _roots(self) -> list[tuple[str, Path | None]]:
        return [("bundled", self._bundled_dir), ("system", self._system_dir), ("user", Path(self.home.plugins_dir))]

    @_core_work
    def start(self, *, load: bool = True) -> "PluginHost":
        """Discover, validate, resolve, migrate, import and activate every enabled plugin.

        ``load=False`` stops before any plugin code runs (``plugin list``, ``enable``,
        ``disable``, ``uninstall``, ``config``): plugins that would load are shown as
        ``enabled``, and nothing of theirs is imported, migrated or called."""
        with self._lock:
            if self.started:
                return self
            self.loads_code = load
            self._markers_dir.mkdir(parents=True, exist_ok=True)
            try:
                # an install the app died in the middle of: put the previous version back first
                bundle.recover_interrupted_installs(Path(self.home.plugins_dir))
            except OSError as exc:
                log.error("tidying up interrupted plugin installs in %s failed: %s", self.home.plugins_dir, exc)
            for name in leftover_markers(self._markers_dir):
                reason = (f"disabled because crm-desktop stopped while activating {name} in an earlier run; "
                          f"fix or update it, then `crm-desktop plugin enable {name}`")
                log.error("plugin %s: %s", name, reason)
                self._state.set_disabled(name, reason)
                marker_path(self._markers_dir, name).unlink(missing_ok=True)
            candidates = discovery.discover(self._roots(), [("user", p) for p in self._extra])
            for candidate in candidates:
                self._records[candidate.name] = self._new_record(candidate)
                if candidate.error and load:
                    log.error("plugin folder %s cannot be loaded: %s", candidate.path, candidate.error)
            for name in list(self._records):
                self._notify(name, "state_changed")  # declared menus can show before any import
            # subscribe first, so events published while plugins activate reach those already active
            # on the GUI thread: an import commits on a worker, and crm_event handlers may touch Qt
            self._unsubscribe_bus = self.core.events.subscribe(self._on_bus_event, main_thread=True)
            self._resolve_and_load([n for n in self._records if n in self._eligible])
            self.started = True
            return self

    @_core_work
    def stop(self) -> None:
        """Deactivate every plugin (their enabled state is kept) and stop forwarding events."""
        with self._lock:
            if self._unsubscribe_bus is not None:
                self._unsubscribe_bus()
                self._unsubscribe_bus = None
            for name in reversed(list(self._runtime)):
                self._teardown(name)
                self._records[name].state = PluginState.DISABLED
            self.started = False

    def _new_record(self, candidate: Candidate) -> PluginRecord:
        m = candidate.manifest
        record = PluginRecord(
            name=candidate.name, version=m.version if m else "?", display_name=m.title if m else candidate.name,
            author=m.author if m else "", description=m.description if m else "", source=candidate.source,
            path=candidate.path, state=PluginState.ERROR, error=candidate.error, manifest=m,
            permissions=self._gate(m).effective() if m else [])
        self._eligible.discard(record.name)
        untrusted: str | None = None
        if m is not None:
            decision = trust.decide(self.policy, candidate.path, candidate.source, m.name, m.version)
            record.publisher, record.key_id = decision.publisher, decision.provenance.key_id
            untrusted = decision.refusal
        if candidate.error is None:
            state, record.error = self._gate_state(record, untrusted)
            if state is None:
                # passed every check that needs no code; shown as disabled until it loads
                record.state = PluginState.DISABLED
                self._eligible.add(record.name)
            else:
                record.state = state
        return record

    def _gate_state(self, record: PluginRecord, untrusted: str | None) -> tuple[PluginState | None, str | None]:
        """The state a plugin gets from checks that need no code (policy, user choice, compatibility).

        ``untrusted`` is :func:`trust.decide`'s refusal (``requireSignature``), or None."""
        m = record.manifest
        assert m is not None
        if self.policy_error:
            return PluginState.BLOCKED, f"the plugin policy is unreadable, so no plugin loads: {self.policy_error}"
        refusal = self.policy.refusal(m.name)
        if refusal:
            return PluginState.BLOCKED, refusal
        if untrusted:  # requireSignature: only first-party, verified-bundle installs and allowUnsignedFrom folders
            return PluginState.BLOCKED, untrusted
        disabled = self._state.disabled()
        if m.name in disabled:
            return PluginState.DISABLED, disabled[m.name] or None
        problems = compatibility_problems(m) + missing_python_dependencies(m)
        if problems:
            return PluginState.INCOMPATIBLE, "; ".join(problems)
        return None, None  # eligible: resolve and load next

    def _resolve_and_load(self, names: list[str]) -> None:
        """Resolve ``names`` against what is active and load them in dependency order."""
        up = (PluginState.ACTIVE, PluginState.ENABLED)
        manifests = {n: r.manifest for n, r in self._records.items()
                     if r.manifest is not None and (n in names or r.state in up)}
        unavailable = {n: f"it is {r.state.value}" + (f" ({r.error.splitlines()[0]})" if r.error else "")
                       for n, r in self._records.items() if n not in manifests and r.manifest is not None}
        resolution = resolve(manifests, unavailable)
        for name, problem in resolution.problems.items():
            if name in names:
                self._set_state(name, PluginState.ERROR, problem)
        for name in resolution.order:
            if name not in names:
                continue
            record = self._records[name]
            blocked = [d for d in record.manifest.dependencies.plugins
                       if self._records.get(d) is None or self._records[d].state not in up]
            if blocked:
                dep = blocked[0]
                state = self._records[dep].state.value if dep in self._records else "missing"
                self._set_state(name, PluginState.ERROR, f"needs plugin {dep!r}, which is {state}")
                continue
            if self.loads_code:
                self._load(name)
            else:
                self._check_without_code(name)
        self._eligible.difference_update(names)

    def _set_state(self, name: str, state: PluginState, error: str | None) -> None:
        record = self._records[name]
        record.state, record.error = state, error
        if state is not PluginState.ACTIVE and error:
            log.warning("plugin %s is %s: %s", name, state.value, error.splitlines()[0])
        self._notify(name, "state_changed")

    def _gate(self, manifest: Manifest) -> PermissionGate:
        declared = frozenset(manifest.permissions) | frozenset(manifest.provides.permissions)
        return PermissionGate(manifest.name, declared, self.policy.permits, lambda: self.role)

    # ------------------------------------------------------------------ loading

    def _check_without_code(self, name: str) -> None:
        """``start(load=False)``: the last check before loading (installed files unchanged), then ``enabled``."""
        record = self._records[name]
        report = integrity.check_plugin_folder(record.path, name)
        if not report.ok:
            self._set_state(name, PluginState.BLOCKED, str(integrity.IntegrityError(name, report.problems)))
            return
        self._set_state(name, PluginState.ENABLED, None)

    @_core_work
    def _load(self, name: str) -> None:
        record = self._records[name]
        manifest = record.manifest
        assert manifest is not None
        # installed from a bundle: its files must still be the ones installed (before any of its code runs)
        report = integrity.check_plugin_folder(record.path, name)
        if not report.ok:
            self._set_state(name, PluginState.BLOCKED, str(integrity.IntegrityError(name, report.problems)))
            return
        try:
            self._migrate(manifest, record.path)
        except Exception as exc:
            self._set_state(name, PluginState.ERROR, f"migrating its tables failed: {exc}")
            return
        marker = marker_path(self._markers_dir, name)
        marker.write_text(f"activating {name} {manifest.version} at {datetime.now(timezone.utc).isoformat()}\n")
        try:
            self._import_and_activate(record)
        finally:
            marker.unlink(missing_ok=True)

    def _import_and_activate(self, record: PluginRecord) -> None:
        name, manifest = record.name, record.manifest
        data_dir = Path(self.home.plugin_data_dir) / name
        if self._tripwire is not None:
            grants = PluginGrants.from_permissions(self._gate(manifest).effective(), self.policy.grants_for(name))
            self._tripwire.register(name, record.path, data_dir, grants)
        what = f"importing {manifest.main}"
        fresh = self.started
        outcome = run_watched(name, what, lambda: loader.import_plugin(manifest.ident, record.path, manifest.main,
                                                                       fresh=fresh))
        if outcome.status == "hung":
            self._mark_hung(name, what, outcome.seconds)
            return
        if outcome.status == "raised":
            library = missing_library(outcome.error) if outcome.error is not None else None
            if library is not None:  # one line naming the library: the stack would only confuse a rep
                log.debug("plugin %s: %s\n%s", name, what, outcome.traceback)
                self._mark_failed(name, what, None, message=missing_library_message(name, library))
            else:
                self._mark_failed(name, what, outcome.traceback)
            return
        module = outcome.value
        try:
            self._reject_ordering_markers(name, module)
            unknown = sorted(a for a in dir(module) if a.startswith("crm_") and a not in self._spec_names
                             and callable(getattr(module, a)) and hasattr(getattr(module, a), hookspecs.PROJECT + "_impl"))
            if unknown:
                raise PluginError(f"plugin {name!r} implements unknown hook {unknown[0]!r}; "
                                  f"known hooks: {', '.join(sorted(self._spec_names))}")
            self._pm.register(module, name=name)
        except Exception:
            loader.purge(manifest.ident)
            self._mark_failed(name, "registering its hooks", traceback.format_exc())
            return
        try:
            self._publish_synced_tables(name, manifest)
        except Exception:
            self._pm.unregister(module)
            loader.purge(manifest.ident)
            self._mark_failed(name, "publishing its synced tables", traceback.format_exc())
            return
        impls = {}
        for caller in self._pm.get_hookcallers(module) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is module:
                    impls[caller.name] = impl
        ctx, resources = build_context(
            manifest=manifest, services=self.core.services, db_path=Path(self.home.db_path),
            data_dir=data_dir, policy_permits=self.policy.permits,
            role=lambda: self.role, publish=self._publish, subscribe=self._subscribe_plugin,
            read_settings=lambda: self._settings.values(manifest),
            write_setting=lambda key, value: self._settings.set(manifest, key, value),
            api_client=self._api_client, tripwire=self._tripwire,
            add_disposer=lambda fn: self.add_disposer(name, fn), ui=lambda: self._plugin_ui(name))
        self._runtime[name] = _Runtime(module=module, ctx=ctx, resources=resources, impls=impls)
        del module, ctx, resources
        result = self._call(name, "crm_activate", _watched=True)
        if result is _FAILED:
            return
        record.permissions = self._runtime[name].resources.gate.effective()
        record.state, record.error = PluginState.ACTIVE, None
        log.info("plugin %s %s activated", name, manifest.version)
        self._notify(name, "activated")
        self._notify(name, "state_changed")

    def _publish_synced_tables(self, name: str, manifest: Manifest) -> None:
        """Tell sync about the plugin's synced models (plugin_api.models.SyncedModel): their entity,
        table and JSON schema are kept in the database, so sync pushes and pulls their rows even
        when the plugin is not loaded; changes pulled for them before it was installed are applied."""
        from crm_desktop.plugin_api.models import synced_models
        from crm_desktop.storage import plugin_sync
        from crm_desktop.sync.applier import publish_plugin_tables

        models = synced_models(name)
        db = getattr(self.core, "db", None)
        if not models or db is None:
            return
        tables = plugin_sync.tables_of(models, name, manifest.version)
        existing = _tables(Path(self.home.db_path))
        missing = sorted(t.table for t in tables if t.table not in existing)
        if missing:
            raise PluginError(f"synced model table(s) {', '.join(missing)} do not exist: add them to the "
                              f"plugin's migrations")
        applied = publish_plugin_tables(db, tables)
        if applied:
            log.info("plugin %s: applied %d change(s) pulled before it was installed", name, applied)

    @_core_work
    def migrate(self, name: str, *, reread: bool = False) -> None:
        """Bring plugin ``name``'s own tables to its newest revision without importing its code.

        This is the slow part of :meth:`enable` and :meth:`reload` (the plugin's revisions in one
        write transaction); it touches no Qt, so the admin panel runs it on its writer thread
        first, and ``enable`` / ``reload`` then find nothing left to migrate. ``reread`` migrates
        what the plugin's folder holds now (its code may have changed: a reload), even while the
        plugin is active. Raises on a failed migration.
        """
        record = self.record(name)
        manifest = record.manifest
        if reread:
            candidate = discovery.inspect_folder(record.path, record.source)
            if candidate.manifest is None:
                return  # the reload itself reports the broken manifest
            manifest = candidate.manifest
        elif name in self._runtime:
            return  # active: its tables were migrated when it loaded
        if manifest is None:
            raise PluginError(f"plugin {name!r} has no valid manifest: {record.error}")
        self._migrate(manifest, record.path)

    def _migrate(self, manifest: Manifest, folder: Path) -> None:
        if not manifest.migrations:
            return
        from crm_desktop.storage import migrate

        db = getattr(self.core, "db", None)
        if db is not None and db.current_transaction() is not None:
            # the migration needs the write lock this thread holds: it would wait out the busy timeout
            raise PluginError("its tables cannot be migrated inside an open write transaction")
        db_path = Path(self.home.db_path)
        version_table = f"alembic_version_{manifest.ident}"
        prefix = table_prefix(manifest.name)
        before = _tables(db_path)

        def only_its_tables(connection) -> None:
            now = {r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
            foreign = sorted(t for t in now - before if not t.startswith(prefix) and t != version_table)
            if foreign:
                raise PluginError(f"its migrations created table(s) {', '.join(foreign)} not prefixed with {prefix!r}")

        # one transaction, rolled back alone on failure: no whole-file backup put back under the running
        # app (edits made meanwhile would be lost), no half-applied plugin tables left behind
        migrate.upgrade_in_one_transaction(db_path, script_location=folder / manifest.migrations,
                                           version_table=version_table, label=f"plugin-{manifest.name}",
                                           check=only_its_tables)

    # ------------------------------------------------------------------ calling hooks

    #: pluggy options the host does not honour: it calls each plugin's implementation on its own,
    #: in its guard, so there is no chain to wrap or order, and a hook is found by its name
    UNSUPPORTED_HOOKIMPL_OPTIONS = ("hookwrapper", "wrapper", "tryfirst", "trylast", "specname")

    def _reject_ordering_markers(self, name: str, module: ModuleType) -> None:
        """Refuse a plugin whose ``@hookimpl`` uses an option the host would silently ignore
        (docs/plugin-hooks.md, "Hook options"): one error naming the plugin, hook and option."""
        for attribute in sorted(dir(module)):
            opts = self._pm.parse_hookimpl_opts(module, attribute)
            if not opts:
                continue
            used = [o for o in self.UNSUPPORTED_HOOKIMPL_OPTIONS if opts.get(o)]
            if used:
                hook = opts.get("specname") or attribute
                raise PluginError(
                    f"plugin {name!r}: hook {hook!r} uses @hookimpl({used[0]}=...), which crm-desktop does not "
                    f"support (each plugin's hook is called on its own, in its guard: no wrapping, ordering or "
                    f"renaming); remove it, see docs/plugin-hooks.md")

    def _call(self, name: str, hook: str, _watched: bool = False, **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook`` in its guard; ``_FAILED`` if it raised.

        ``_watched``: run it on a watchdog thread (:mod:`.watchdog`); a call that does not
        return in time marks the plugin hung (and ``_FAILED`` is returned)."""
        rt = self._runtime.get(name)
        if rt is None:
            return None
        impl = rt.impls.get(hook)
        if impl is None:
            return None
        kwargs["ctx"] = rt.ctx
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        function = impl.function
        del rt, impl
        start = time.perf_counter()
        try:
            if _watched:
                outcome = run_watched(name, hook, lambda: function(**args))
                if outcome.status == "hung":
                    self._mark_hung(name, hook, outcome.seconds)
                    return _FAILED
                if outcome.status == "raised":
                    self._mark_failed(name, hook, outcome.traceback)
                    return _FAILED
                return outcome.value
            return function(**args)
        except (Exception, SystemExit, KeyboardInterrupt):  # plugin code: it ends only the plugin
            self._mark_failed(name, hook, traceback.format_exc())
            return _FAILED
        finally:
            if self._trace:
                trace_log.info("hook %s plugin %s %.3f ms", hook, name, (time.perf_counter() - start) * 1000)

    def guard(self, name: str, what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` in plugin ``name``'s guard: on an exception the plugin is marked failed, None returned."""
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except (Exception, SystemExit, KeyboardInterrupt):  # plugin code: it ends only the plugin
            self._mark_failed(name, what, traceback.format_exc())
            return None
        finally:
            if self._trace:
                trace_log.info("call %s plugin %s %.3f ms", what, name, (time.perf_counter() - start) * 1000)

    def _contributions(self, name: str, hook: str, kind: type, **kwargs: Any) -> list:
        result = self._call(name, hook, **kwargs)
        if result is None or result is _FAILED:
            return []
        if not isinstance(result, (list, tuple)) or not all(isinstance(i, kind) for i in result):
            bad = next((i for i in result if not isinstance(i, kind)), result) \
                if isinstance(result, (list, tuple)) else result
            self._mark_failed(name, hook, f"{hook} returned {bad!r}, expected a list of {kind.__name__}\n")
            return []
        return [i for i in result if getattr(i, "permission", None) is None or self.allowed(name, i.permission)]

    def menu_actions(self, name: str) -> list[MenuAction]:
        """The plugin's menu actions the user may see (guarded; [] if it fails)."""
        return self._contributions(name, "crm_menu_actions", MenuAction)

    def panels(self, name: str) -> list[Panel]:
        """The plugin's panels (guarded; [] if it fails)."""
        return self._contributions(name, "crm_panels", Panel)

    def record_actions(self, name: str, entity: str) -> list[RecordAction]:
        """The plugin's context-menu actions for ``entity`` records (guarded; [] if it fails)."""
        return [a for a in self._contributions(name, "crm_record_actions", RecordAction, entity=entity)
                if a.entity == entity]

    def cli_commands(self, name: str) -> list[CliCommand]:
        """The subcommands the plugin adds to ``crm-desktop`` (guarded; [] if it fails)."""
        return self._contributions(name, "crm_cli_commands", CliCommand)

    # ------------------------------------------------------------------ events

    def _publish(self, plugin: str, name: str, payload: dict) -> None:
        from crm_desktop.services.events import Event

        self.core.events.publish(Event(name, payload, source=f"plugin:{plugin}"))

    def _subscribe_plugin(self, plugin: str, event_name: str, handler: Callable) -> Callable[[], None]:
        entry = (plugin, event_name, handler)
        self._subscriptions.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)

        return unsubscribe

    def _on_bus_event(self, event: Any) -> None:
        for name in list(self._runtime):
            if event.source == f"plugin:{name}":
                continue  # a plugin's own events go to the others
            record = self._records.get(name)
            if record is not None and record.state is PluginState.ACTIVE:
                self._call(name, "crm_event", event=event)
        for plugin, wanted, handler in list(self._subscriptions):
            if event.source == f"plugin:{plugin}":
                continue
            if event.name == wanted or (wanted.endswith(".") and event.name.startswith(wanted)) or wanted == "*":
                self.guard(plugin, f"event handler for {event.name}", handler, event)

    # ------------------------------------------------------------------ failing and unloading

    def _mark_failed(self, name: str, what: str, tb: str | None, *, message: str | None = None) -> None:
        """Tear the plugin down and record why: ``tb`` (a traceback), or ``message`` alone when it says it all.
        The teardown runs the Qt adapter's disposers: on the GUI thread, wherever the plugin raised."""
        self._on_main_thread(lambda: self._mark_failed_now(name, what, tb, message=message))

    def _mark_failed_now(self, name: str, what: str, tb: str | None, *, message: str | None = None) -> None:
        with self._lock:
            record = self._records.get(name)
            if record is None:
                return
            was_active = record.state is PluginState.ACTIVE
            tb = tb or ""
            last = message or (tb.strip().splitlines()[-1] if tb.strip() else "error")
            log.error("plugin %s failed in %s: %s", name, what, last)
            self._teardown(name, run_deactivate=was_active and what != "crm_deactivate")
            record.state = PluginState.FAILED
            record.error = message if message else f"{what} raised {last}\n\n{tb}"
            self._notify(name, "failed")
            self._notify(name, "state_changed")

    def _mark_hung(self, name: str, what: str, seconds: float) -> None:
        """The plugin's ``what`` did not return within ``seconds``: unload it without running any more
        of its code, and keep it disabled at the next start (like a crash during activation)."""
        reason = (f"hung: {what} did not return within {seconds:g} s (limit: {TIMEOUT_HINT}); disabled; "
                  f"fix or update it, then `crm-desktop plugin enable {name}`")
        with self._lock:
            record = self._records.get(name)
            if record is None:
                return
            log.error("plugin %s %s", name, reason)
            try:
                self._state.set_disabled(name, reason)
            except OSError as exc:
                log.error("could not record plugin %s as hung in %s: %s", name, self._state.path, exc)
            self._teardown(name, run_deactivate=False, run_plugin_code=False)
            record.state = PluginState.FAILED
            record.error = reason
            self._notify(name, "failed")
            self._notify(name, "state_changed")

    def _dispose_one(self, name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # one bad disposer must not keep the others from running
            log.exception("a disposer of plugin %s failed", name)

    @_core_work
    def _teardown(self, name: str, *, run_deactivate: bool = True, run_plugin_code: bool = True) -> None:
        """Deactivate, run disposers, drop subscriptions, unregister hooks, purge modules.

        ``run_plugin_code=False`` (a hung plugin) skips its deactivate hook and disposers."""
        rt = self._runtime.get(name)
        record = self._records.get(name)
        ident = record.manifest.ident if record is not None and record.manifest is not None else None
        if rt is None:
            if self._tripwire is not None:
                self._tripwire.unregister(name)
            if ident:
                loader.purge(ident)
            return
        self._notify(name, "deactivating")
        if run_deactivate and run_plugin_code and "crm_deactivate" in rt.impls:
            impl = rt.impls["crm_deactivate"]
            kwargs = {k: rt.ctx for k in impl.argnames}
            outcome = run_watched(name, "crm_deactivate", lambda: impl.function(**kwargs))
            del impl, kwargs
            if outcome.status == "raised":
                log.error("plugin %s: crm_deactivate raised %s", name, outcome.traceback.strip().splitlines()[-1])
            elif outcome.status == "hung":
                reason = (f"hung: crm_deactivate did not return within {outcome.seconds:g} s; disabled; "
                          f"fix or update it, then `crm-desktop plugin enable {name}`")
                log.error("plugin %s %s", name, reason)
                run_plugin_code = False
                try:
                    self._state.set_disabled(name, reason)
                except OSError:
                    pass
        if run_plugin_code:
            for disposer in reversed(rt.disposers):
                self._dispose_one(name, disposer)
        rt.disposers.clear()
        if self._tripwire is not None:
            self._tripwire.unregister(name)  # after its deactivate and disposers, which are still watched
        rt.resources.close()
        self._subscriptions = [s for s in self._subscriptions if s[0] != name]
        try:
            self._pm.unregister(rt.module, name=name)
        except Exception:
            log.exception("unregistering plugin %s from pluggy failed", name)
        for base in bases_of(name):
            try:
                base.registry.dispose()
                base.metadata.clear()
            except Exception:
                log.exception("disposing the models of plugin %s failed", name)
        self._runtime.pop(name, None)
        rt.impls.clear()
        del rt
        if ident:
            loader.purge(ident)

    # ------------------------------------------------------------------ live lifecycle

    def _reinspect(self, name: str) -> PluginRecord:
        """Read the plugin's folder again (the code or manifest may have changed)."""
        old = self._records[name]
        candidate = discovery.inspect_folder(old.path, old.source)
        if candidate.manifest is not None and candidate.manifest.name != name:
            candidate.error = f"plugin.json now names {candidate.manifest.name!r}, was {name!r}"
        candidate.name = name
        new = self._new_record(candidate)
        self._records[name] = new
        return new

    def _active_dependents(self, name: str) -> list[str]:
        manifests = {n: r.manifest for n, r in self._records.items() if r.manifest is not None}
        return [d for d in dependents_of(name, manifests) if d in self._runtime]

    @_core_work
    def enable(self, name: str) -> PluginRecord:
        """Enable (persisted) and activate ``name``; returns its record (which may say why it cannot run)."""
        with self._lock:
            self.record(name)
            self._state.set_enabled(name)
            if name in self._runtime:
                return self._records[name]
            record = self._reinspect(name)
            if name in self._eligible:
                self._resolve_and_load([name])
            else:
                self._notify(name, "state_changed")
            self._retry_dependents(name)
            return self._records[name]

    def _retry_dependents(self, name: str) -> None:
        if self._records[name].state is not PluginState.ACTIVE:
            return
        waiting = [n for n, r in self._records.items() if r.state is PluginState.ERROR and r.manifest is not None
                   and name in r.manifest.dependencies.plugins]
        for dependent in waiting:
            record = self._reinspect(dependent)
            if dependent in self._eligible:
                self._resolve_and_load([dependent])

    @_core_work
    def disable(self, name: str, *, persist: bool = True) -> PluginRecord:
        """Deactivate ``name`` (and what depends on it); ``persist`` remembers it across starts."""
        with self._lock:
            record = self.record(name)
            if persist:
                self._state.set_disabled(name)
            for dependent in reversed(self._active_dependents(name)):
                self._teardown(dependent)
                self._set_state(dependent, PluginState.ERROR, f"needs plugin {name!r}, which is disabled")
            self._teardown(name)
            self._set_state(name, PluginState.DISABLED, None)
            return record

    @_core_work
    def reload(self, name: str) -> PluginRecord:
        """Unload ``name`` (and its dependents) completely and load it again from its folder."""
        with self._lock:
            self.record(name)
            dependents = self._active_dependents(name)
            for dependent in reversed(dependents):
                self._teardown(dependent)
            self._teardown(name)
            record = self._reinspect(name)
            if name in self._eligible:
                self._resolve_and_load([name])
            else:
                self._notify(name, "state_changed")
            for dependent in dependents:
                self._reinspect(dependent)
                if dependent in self._eligible:
                    self._resolve_and_load([dependent])
            return self._records[name]

    @_core_work
    def plan_folder_install(self, path: Path) -> FolderInstallPlan:
        """What installing the folder ``path`` would do; :class:`PluginError` naming the rule if it is refused.

        The same rules as a bundle: the policy's block and allow lists, no
        downgrade, and under ``requireSignature`` no unsigned code outside
        ``allowUnsignedFrom`` (see :mod:`crm_desktop.plugin_host.folder_install`).
        """
        with self._lock:
            if self.policy_error:
                raise PluginError(f"the plugin policy is unreadable, so nothing is installed: {self.policy_error}")
            return plan_folder_install(Path(path), Path(self.home.plugins_dir), self.policy, self._records.get)

    @_core_work
    def install_folder(self, path: Path, *, approve: Callable[[FolderInstallPlan], bool] | None = None
                       ) -> PluginRecord:
        """Install a plugin folder: check it (:meth:`plan_folder_install`), ask ``approve(plan)``, copy, activate.

        A folder outside ``<home>/plugins`` is copied there first; a newer copy
        of an installed user plugin replaces it (reloaded live). Raises
        :class:`PluginError`, changing nothing, when the plan is refused or
        ``approve`` returns False.
        """
        with self._lock:
            plan = self.plan_folder_install(path)
            if approve is not None and not approve(plan):
                raise PluginError(f"install of {plan.name} from {plan.source} cancelled; nothing changed")
            return self._put_in_place(plan.source, plan.target, plan.name)

    @_core_work
    def activate_installed(self, path: Path) -> PluginRecord:
        """Load a plugin folder the bundle installer has just put in place under ``<home>/plugins``.

        The bundle was verified against the policy before it was extracted;
        the usual load-time checks (policy, signature record, file list) still
        run before any of its code does.
        """
        with self._lock:
            path = Path(path).resolve()
            if path.parent != Path(self.home.plugins_dir).resolve():
                raise PluginError(f"{path} is not in the plugins folder {self.home.plugins_dir}")
            candidate = discovery.inspect_folder(path, "user")
            if candidate.error:
                raise PluginError(candidate.error)
            existing = self._records.get(candidate.name)
            if existing is not None and existing.source != "user":
                raise PluginError(f"a {existing.source} plugin named {candidate.name!r} exists at {existing.path}; "
                                  f"a user plugin cannot replace it")
            return self._put_in_place(path, path, candidate.name)

    def _put_in_place(self, path: Path, target: Path, name: str) -> PluginRecord:
        """Unload the installed ``name``, copy ``path`` to ``target`` (unless they are one), and load it."""
        if name in self._records:
            for dependent in reversed(self._active_dependents(name)):
                self._teardown(dependent)
            self._teardown(name)
        if target != path:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
        candidate = discovery.inspect_folder(target, "user")
        self._state.set_enabled(name)
        self._records[name] = self._new_record(candidate)
        if name in self._eligible:
            self._resolve_and_load([name])
        else:
            self._notify(name, "state_changed")
        self._retry_dependents(name)
        return self._records[name]

    @_core_work
    def uninstall(self, name: str, drop_data: bool = False) -> None:
        """Remove a user plugin's folder; keep its tables and settings unless ``drop_data``
        (then the database is backed up first and its tables dropped)."""
        with self._lock:
            record = self.record(name)
            if record.source != "user":
                raise PluginError(f"plugin {name!r} is {record.source} ({record.path}); "
                                  f"it can be disabled, not uninstalled")
            for dependent in reversed(self._active_dependents(name)):
                self._teardown(dependent)
                self._set_state(dependent, PluginState.ERROR, f"needs plugin {name!r}, which was uninstalled")
            self._teardown(name)
            if drop_data and record.manifest is not None:
                self.forget_data(record.manifest)
            shutil.rmtree(record.path, ignore_errors=True)
            del self._records[name]
            self._state.set_enabled(name)
            self._notify(name, "state_changed")

    @_core_work
    def forget_data(self, manifest: Manifest) -> Path | None:
        """Delete an uninstalled plugin's data: its tables (after a backup, :meth:`drop_data`), its
        settings and its data folder; returns the backup. No Qt and no plugin code: the admin panel
        runs it on its writer thread after ``uninstall(name, drop_data=False)``."""
        backup = self.drop_data(manifest)
        self._settings.forget(manifest)
        shutil.rmtree(Path(self.home.plugin_data_dir) / manifest.name, ignore_errors=True)
        return backup

    @_core_work
    def drop_data(self, manifest: Manifest) -> Path | None:
        """Back up the database, then drop the plugin's tables and version table; returns the backup."""
        from crm_desktop.storage.migrate import backup_database

        db_path = Path(self.home.db_path)
        prefix = table_prefix(manifest.name)
        others = [table_prefix(n) for n in self._records if n != manifest.name and table_prefix(n).startswith(prefix)]
        tables = sorted(t for t in _tables(db_path) if t.startswith(prefix) and not t.startswith(tuple(others)))
        version_table = f"alembic_version_{manifest.ident}"
        if version_table in _tables(db_path):
            tables.append(version_table)
        if not tables:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = backup_database(db_path, Path(self.home.backups_dir) /
                                 f"{db_path.stem}-{stamp}-before-uninstall-{manifest.name}.sqlite3")
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("PRAGMA foreign_keys=OFF")
            with conn:
                for table in tables:
                    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
                # sync forgets its synced tables (pulled changes for them are parked again, not lost)
                if "sync_plugin_tables" in _tables(db_path):
                    conn.execute("DELETE FROM sync_plugin_tables WHERE plugin = ?", (manifest.name,))
        finally:
            conn.close()
        log.info("dropped %s of plugin %s (backup %s)", ", ".join(tables), manifest.name, backup)
        return backup

    def set_role(self, role: Role | str) -> None:
        """The signed-in user's role changed: recompute what each plugin may do."""
        self.role = Role(role)
        for name, record in self._records.items():
            if record.manifest is not None:
                record.permissions = self._gate(record.manifest).effective()
                self._notify(name, "state_changed")


def _tables(db_path: Path) -> set[str]:
    conn = sqlite3.connect(db_path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
