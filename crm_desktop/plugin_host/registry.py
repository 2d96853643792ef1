"""The plugin registry and lifecycle: every plugin found, its state, and loading and unloading it.

:class:`PluginRegistry` is the heart of the plugin host: discover → validate → resolve →
check → migrate → import → activate, and back (deactivate, dispose, unregister, purge). It
keeps a :class:`~crm_desktop.plugin_host.lifecycle.PluginRecord` per plugin, decides each
plugin's state from the checks that need no code (policy, signature, the user's choice,
compatibility, dependencies), and tells listeners (the Qt adapter, the admin panel) when a
plugin's contributions are to be built or removed, on the GUI thread.

It calls plugin code only through :class:`~crm_desktop.plugin_host.hook_calls.HookCaller`
(which reports failures back here) and touches the database only through
:class:`~crm_desktop.plugin_host.plugin_data.PluginData`. No Qt here.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import traceback
import weakref
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Concatenate, Iterator, ParamSpec, Protocol, TypeVar

from crm_desktop.domain.enums import Role
from crm_desktop.paths import Home
from crm_desktop.plugin_api.context import PluginContext
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_api.models import bases_of, synced_models
from crm_desktop.plugin_host import bundle, discovery, integrity, loader, trust
from crm_desktop.plugin_host.discovery import Candidate
from crm_desktop.plugin_host.facade import build_context
from crm_desktop.plugin_host.hook_calls import FAILED, HookCaller, PluginRuntime
from crm_desktop.plugin_host.import_problems import missing_library, missing_library_message
from crm_desktop.plugin_host.lifecycle import (
    PluginRecord, PluginState, StateFile, leftover_markers, marker_path,
)
from crm_desktop.plugin_host.manifest import (
    Manifest, ManifestMenuEntry, compatibility_problems, missing_python_dependencies,
)
from crm_desktop.plugin_host.permissions import PermissionGate
from crm_desktop.plugin_host.plugin_data import PluginData
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.resolver import dependents_of, resolve
from crm_desktop.plugin_host.settings_store import SettingsStore
from crm_desktop.plugin_host.tripwire import PluginGrants, Tripwire
from crm_desktop.plugin_host.watchdog import run_watched

log = logging.getLogger(__name__)

TIMEOUT_HINT = "CRM_DESKTOP_PLUGIN_TIMEOUT, default 10 s"

Listener = Callable[[str, str], None]


class Writer(Protocol):
    """Where the host runs a load's database work in the app: the UI's writer thread
    (``crm_desktop.ui.executor.DataExecutor`` is one). ``fn`` runs there; ``done(result)`` or
    ``failed(exc)`` is then called on the GUI thread."""

    def write(self, fn: Callable[[], Any], *, done: Callable[[Any], None] | None = ...,
              failed: Callable[[BaseException], None] | None = ..., label: str = ...) -> None: ...


class _PendingLoad:
    """A load waiting for the writer: the plugin's tables are being migrated (``module`` None: nothing
    of it is imported yet), or it is imported and registered and its synced tables are being published.
    Either way it has no ctx or runtime yet, so none of its hooks is called."""

    def __init__(self, token: int, module: ModuleType | None):
        self.token = token
        self.module = module


class _Tripwired(Protocol):
    @property
    def tripwire(self) -> Tripwire | None: ...


S = TypeVar("S", bound=_Tripwired)
P = ParamSpec("P")
R = TypeVar("R")


def core_work(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """The host's own file and database work (markers, migrations, copies, settings) runs as the core:
    the tripwire does not pin it on a plugin even when plugin code (e.g. the plugin's own tests) called
    the host. Plugin hooks the host calls from inside are still attributed to their plugin."""

    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        tripwire = self.tripwire
        if tripwire is None:
            return method(self, *args, **kwargs)
        with tripwire.core_call():
            return method(self, *args, **kwargs)

    functools.update_wrapper(run, method)
    return run


class PluginRegistry:
    """Every plugin of one core and home, and its lifecycle (see the module docstring).

    ``policy``, ``role``, ``started`` and ``loads_code`` are read and set by the host's facade;
    ``roots`` are the (source, folder) pairs searched, ``extra`` single plugin folders."""

    def __init__(self, core: Any, home: Home, *, policy: Policy, policy_error: str | None, role: Role,
                 roots: list[tuple[str, Path | None]], extra: tuple[Path, ...], api_client: Any,
                 tripwire: Tripwire | None, settings: SettingsStore, data: PluginData):
        self.core = core
        self.home = home
        self.policy = policy
        self.policy_error = policy_error
        self.role = role
        self.tripwire = tripwire
        self.started = False
        #: False after ``start(load=False)``: management commands never run plugin code
        self.loads_code = True
        self.lock = threading.RLock()
        self.records: dict[str, PluginRecord] = {}
        self.data = data
        self.hooks = HookCaller(on_failed=self.mark_failed, on_hung=self.mark_hung, allowed=self.allowed)
        self._roots = roots
        self._extra = extra
        self._api_client = api_client
        self._settings = settings
        self._eligible: set[str] = set()  # passed the checks that need no code, not loaded yet
        self._listeners: list[Listener] = []
        self._ui_factory: Callable[[str], Any] | None = None
        self._unsubscribe_bus: Callable[[], None] | None = None
        self.state_file = StateFile(Path(home.root))
        self._markers_dir = Path(home.plugin_data_dir)
        # loads waiting for the writer: migrating their tables or publishing their synced tables (see set_writer)
        self._writer: Writer | None = None
        self._pending: dict[str, _PendingLoad] = {}
        self._tokens = itertools.count(1)
        self._generation = 0  # stop() abandons the loads in progress
        self._loads_running = 0  # load sequences not finished yet (resolve_and_load ... then)
        self._after_loads: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ reading

    def record(self, name: str) -> PluginRecord:
        """The record of ``name``; :class:`PluginError` naming the known plugins if there is none."""
        try:
            return self.records[name]
        except KeyError:
            known = ", ".join(sorted(self.records)) or "none"
            raise PluginError(f"no plugin named {name!r} (plugins: {known})") from None

    def manifest(self, name: str) -> Manifest:
        """``name``'s manifest; :class:`PluginError` if it has no valid one."""
        record = self.record(name)
        if record.manifest is None:
            raise PluginError(f"plugin {name!r} has no valid manifest: {record.error}")
        return record.manifest

    def is_active(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and record.state is PluginState.ACTIVE

    def context(self, name: str) -> PluginContext | None:
        rt = self.hooks.runtimes.get(name)
        return rt.ctx if rt else None

    def module_ref(self, name: str) -> "weakref.ref[ModuleType] | None":
        rt = self.hooks.runtimes.get(name)
        return weakref.ref(rt.module) if rt else None

    def allowed(self, name: str, permission: str) -> bool:
        record = self.records.get(name)
        if record is None or record.manifest is None:
            return False
        return self.gate(record.manifest).allowed(permission)

    def declared_menu(self, name: str) -> list[ManifestMenuEntry]:
        record = self.records.get(name)
        if record is None or record.manifest is None:
            return []
        # eligible = passed every check that needs no code and is about to load: its entries
        # show before the import (the Qt adapter builds them on the first state_changed)
        if record.state not in (PluginState.ACTIVE, PluginState.FAILED) and name not in self._eligible:
            return []
        return [e for e in record.manifest.menu if all(self.allowed(name, p) for p in e.permissions)]

    def gate(self, manifest: Manifest) -> PermissionGate:
        declared = frozenset(manifest.permissions) | frozenset(manifest.provides.permissions)
        return PermissionGate(manifest.name, declared, self.policy.permits, lambda: self.role)

    def set_role(self, role: Role | str) -> None:
        self.role = Role(role)
        for name, record in self.records.items():
            if record.manifest is not None:
                record.permissions = self.gate(record.manifest).effective()
                self.notify(name, "state_changed")

    # ------------------------------------------------------------------ listeners

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def on_main_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the GUI thread through the one dispatcher the app installed on the event bus
        (inline without a GUI): listeners build Qt objects and plugins' hooks may touch Qt."""
        events = getattr(self.core, "events", None)
        if events is not None and hasattr(events, "call_on_main_thread"):
            events.call_on_main_thread(fn)
        else:
            fn()

    def notify(self, name: str, what: str) -> None:
        self.on_main_thread(lambda: self._notify_now(name, what))

    def _notify_now(self, name: str, what: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, what)
            except Exception:  # a listener's bug must not stop the lifecycle
                log.exception("plugin host listener %r failed on %s %s", listener, name, what)

    def set_ui_factory(self, factory: Callable[[str], Any] | None) -> None:
        self._ui_factory = factory

    def _plugin_ui(self, name: str) -> Any:
        rt = self.hooks.runtimes.get(name)
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
        rt = self.hooks.runtimes.get(name)
        if rt is None:
            log.warning("disposer for inactive plugin %s run at once", name)
            self._dispose_one(name, fn)
            return
        rt.disposers.append(fn)

    # ------------------------------------------------------------------ the writer

    def set_writer(self, writer: Writer | None) -> None:
        """Publish loading plugins' synced tables on ``writer`` (the app's writer thread) instead of
        here. None (the command line, headless hosts): every load runs to its end before returning."""
        self._writer = writer

    @property
    def loading(self) -> bool:
        """True while a load started by start/enable/reload/install waits for the writer."""
        return self._loads_running > 0

    def after_loads(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on the GUI thread) once no load is in progress: at once when none is."""
        if self._loads_running <= 0:
            fn()
        else:
            self._after_loads.append(fn)

    def _loads_settled(self) -> None:
        waiting, self._after_loads = self._after_loads, []
        for fn in waiting:
            try:
                fn()
            except Exception:  # a waiter's bug must not stop the others
                log.exception("a plugin host after_loads callback failed")

    # ------------------------------------------------------------------ start / stop

    @core_work
    def start(self, *, load: bool = True) -> None:
        """Discover, validate, resolve, migrate, import and activate every enabled plugin
        (``load=False``: stop before any plugin code runs; see ``PluginHost.start``)."""
        with self.lock:
            if self.started:
                return
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
                self.state_file.set_disabled(name, reason)
                marker_path(self._markers_dir, name).unlink(missing_ok=True)
            candidates = discovery.discover(self._roots, [("user", p) for p in self._extra])
            for candidate in candidates:
                self.records[candidate.name] = self.new_record(candidate)
                if candidate.error and load:
                    log.error("plugin folder %s cannot be loaded: %s", candidate.path, candidate.error)
            for name in list(self.records):
                self.notify(name, "state_changed")  # declared menus can show before any import
            # subscribe first, so events published while plugins activate reach those already active
            # on the GUI thread: an import commits on a worker, and crm_event handlers may touch Qt
            self._unsubscribe_bus = self.core.events.subscribe(self._on_bus_event, main_thread=True)
            self.resolve_and_load([n for n in self.records if n in self._eligible])
            self.started = True

    @core_work
    def stop(self) -> None:
        with self.lock:
            if self._unsubscribe_bus is not None:
                self._unsubscribe_bus()
                self._unsubscribe_bus = None
            # loads waiting for the writer are abandoned: their plugins stay unloaded, and the writer's
            # answer, should it still come, is ignored
            self._generation += 1
            for name in list(self._pending):
                self.teardown(name)
            self._loads_running = 0
            self._loads_settled()
            for name in reversed(list(self.hooks.runtimes)):
                self.teardown(name)
                self.records[name].state = PluginState.DISABLED
            self.started = False

    def _on_bus_event(self, event: Any) -> None:
        self.hooks.dispatch(event, self.is_active)

    def _publish(self, plugin: str, name: str, payload: dict[str, Any]) -> None:
        from crm_desktop.domain.events import Event

        self.core.events.publish(Event(name, payload, source=f"plugin:{plugin}"))

    # ------------------------------------------------------------------ states

    def new_record(self, candidate: Candidate) -> PluginRecord:
        """The record of a plugin folder just inspected, in the state the checks that need no code give."""
        m = candidate.manifest
        record = PluginRecord(
            name=candidate.name, version=m.version if m else "?", display_name=m.title if m else candidate.name,
            author=m.author if m else "", description=m.description if m else "", source=candidate.source,
            path=candidate.path, state=PluginState.ERROR, error=candidate.error, manifest=m,
            permissions=self.gate(m).effective() if m else [])
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
        disabled = self.state_file.disabled()
        if m.name in disabled:
            return PluginState.DISABLED, disabled[m.name] or None
        problems = compatibility_problems(m) + missing_python_dependencies(m)
        if problems:
            return PluginState.INCOMPATIBLE, "; ".join(problems)
        return None, None  # eligible: resolve and load next

    def resolve_and_load(self, names: list[str], then: Callable[[], None] | None = None) -> None:
        """Resolve ``names`` against what is active and load them in dependency order, then call ``then``.

        Without a writer (:meth:`set_writer`) all of it happens before this returns. With one, a
        plugin's own migrations (unless the writer just ran them) run on the writer before it is
        imported, and a plugin with synced models is imported here and its tables published on the
        writer; the rest of the sequence (its import and activation, the plugins after it, ``then``)
        continues on the GUI thread when the writer answers, and :attr:`loading` is True meanwhile."""
        up = (PluginState.ACTIVE, PluginState.ENABLED)
        manifests = {n: r.manifest for n, r in self.records.items()
                     if r.manifest is not None and (n in names or r.state in up)}
        unavailable = {n: f"it is {r.state.value}" + (f" ({r.error.splitlines()[0]})" if r.error else "")
                       for n, r in self.records.items() if n not in manifests and r.manifest is not None}
        resolution = resolve(manifests, unavailable)
        for name, problem in resolution.problems.items():
            if name in names:
                self.set_state(name, PluginState.ERROR, problem)
        queue = [n for n in resolution.order if n in names]
        generation = self._generation
        self._loads_running += 1

        def step() -> None:
            if generation != self._generation:
                return  # stopped meanwhile: stop() abandoned this sequence
            waiting = False
            try:
                with self.lock:
                    while queue:
                        name = queue.pop(0)
                        if name in self.hooks.runtimes or name in self._pending:
                            continue  # loaded (or being loaded) by another sequence meanwhile
                        manifest = manifests[name]
                        blocked = [d for d in manifest.dependencies.plugins
                                   if self.records.get(d) is None or self.records[d].state not in up]
                        if blocked:
                            dep = blocked[0]
                            state = self.records[dep].state.value if dep in self.records else "missing"
                            self.set_state(name, PluginState.ERROR, f"needs plugin {dep!r}, which is {state}")
                            continue
                        if not self.loads_code:
                            self._check_without_code(name)
                        elif self._load(name, step):
                            waiting = True  # the writer publishes its synced tables; step() goes on from there
                            return
                    self._eligible.difference_update(names)
                    if then is not None:
                        then()
            finally:
                if not waiting and generation == self._generation:
                    self._loads_running = max(0, self._loads_running - 1)
                    if self._loads_running == 0:
                        self._loads_settled()

        step()

    def set_state(self, name: str, state: PluginState, error: str | None) -> None:
        record = self.records[name]
        record.state, record.error = state, error
        if state is not PluginState.ACTIVE and error:
            log.warning("plugin %s is %s: %s", name, state.value, error.splitlines()[0])
        self.notify(name, "state_changed")

    # ------------------------------------------------------------------ loading

    def _check_without_code(self, name: str) -> None:
        """``start(load=False)``: the last check before loading (installed files unchanged), then ``enabled``."""
        record = self.records[name]
        report = integrity.check_plugin_folder(record.path, name)
        if not report.ok:
            self.set_state(name, PluginState.BLOCKED, str(integrity.IntegrityError(name, report.problems)))
            return
        self.set_state(name, PluginState.ENABLED, None)

    @core_work
    def _load(self, name: str, resume: Callable[[], None]) -> bool:
        """Check, migrate, import and activate ``name``. True when its tables are being migrated or its
        synced tables published on the writer: then the load ends (activation or failure) on the GUI
        thread when the writer answers, and ``resume()`` is called after it; False when the load is
        over already."""
        record = self.records[name]
        manifest = record.manifest
        assert manifest is not None
        # installed from a bundle: its files must still be the ones installed (before any of its code runs)
        report = integrity.check_plugin_folder(record.path, name)
        if not report.ok:
            self.set_state(name, PluginState.BLOCKED, str(integrity.IntegrityError(name, report.problems)))
            return False
        try:
            # files only: nothing to ask the database when the writer has just migrated these very migrations
            migrate = self.data.needs_migration(manifest, record.path)
            if migrate and self._writer is None:  # the command line and headless hosts: here and now
                self.data.upgrade(manifest, record.path)
                migrate = False
        except Exception as exc:
            self.set_state(name, PluginState.ERROR, f"migrating its tables failed: {exc}")
            return False
        if migrate:
            return self._migrate_on_writer(record, manifest, resume)
        return self._import_and_activate(record, manifest, resume)

    def _take_pending(self, name: str, token: int) -> _PendingLoad | None:
        """The writer answered for load ``token`` of ``name``: its pending load, taken, or None when the
        plugin was unloaded, reloaded or the host stopped meanwhile (the answer is stale)."""
        found = self._pending.get(name)
        if found is None or found.token != token:
            return None
        del self._pending[name]
        return found

    def _migrate_on_writer(self, record: PluginRecord, manifest: Manifest, resume: Callable[[], None]) -> bool:
        """The app: read sqlite_master and run the plugin's migrations on the writer (one transaction,
        rolled back alone on failure), then import and activate it here. Until then nothing of the
        plugin is imported: no ctx, no hook. Always True (the load goes on when the writer answers)."""
        name = record.name
        token = next(self._tokens)
        self._pending[name] = _PendingLoad(token, None)

        def migrated(_result: Any) -> None:
            waiting = False
            try:
                with self.lock:
                    if self._take_pending(name, token) is not None:
                        with self._core():
                            waiting = self._import_and_activate(record, manifest, resume)
                        if not waiting:
                            # a plugin that needs this one and was tried meanwhile (another sequence) loads now
                            self.retry_dependents(name)
            finally:
                if not waiting:  # else the publishing's answer resumes the sequence
                    resume()

        def failed(exc: BaseException) -> None:
            try:
                with self.lock:
                    if self._take_pending(name, token) is not None:
                        self.set_state(name, PluginState.ERROR, f"migrating its tables failed: {exc}")
            finally:
                resume()

        assert self._writer is not None
        self._writer.write(lambda: self._upgrade_as_core(manifest, record.path), done=migrated, failed=failed,
                           label=f"migrate the tables of plugin {name}")
        return True

    def _upgrade_as_core(self, manifest: Manifest, folder: Path) -> None:
        with self._core():
            self.data.upgrade(manifest, folder)

    def _import_and_activate(self, record: PluginRecord, manifest: Manifest, resume: Callable[[], None]) -> bool:
        """Its tables are migrated: import and register it, publish its synced tables (on the writer in the
        app: then True, and ``resume()`` is called once that load ended) and activate it."""
        name = record.name
        with self._activation_marker(name, manifest):
            imported = self._import_and_register(record, manifest)
            if imported is None:
                return False
            module, impls = imported
            if self._writer is None or not synced_models(name):
                # the command line and headless hosts (and plugins without synced models): here and now
                try:
                    self.data.publish_synced_tables(name, manifest)
                except Exception:
                    self._publishing_failed(name, manifest, module, traceback.format_exc())
                    return False
                self._activate(record, manifest, module, impls)
                return False
        # The app: sqlite_master is read and sync_plugin_tables written (and parked pulled changes
        # applied) on the writer, not on the GUI thread. Until it answers the plugin has no ctx and
        # no runtime, so none of its hooks (crm_activate, crm_event, contributions) is called.
        token = next(self._tokens)
        self._pending[name] = _PendingLoad(token, module)
        del module

        def pending() -> ModuleType | None:
            found = self._take_pending(name, token)
            return found.module if found is not None else None

        def published(_result: Any) -> None:
            try:
                with self.lock:
                    load = pending()
                    if load is not None:
                        with self._core(), self._activation_marker(name, manifest):
                            self._activate(record, manifest, load, impls)
                        del load
                        # a plugin that needs this one and was tried meanwhile (another sequence) loads now
                        self.retry_dependents(name)
            finally:
                resume()  # the rest of the sequence, whatever happened to this one

        def failed(exc: BaseException) -> None:
            try:
                with self.lock:
                    load = pending()
                    if load is not None:
                        tb = "".join(traceback.format_exception(exc))
                        with self._core():
                            self._publishing_failed(name, manifest, load, tb)
                        del load
            finally:
                resume()

        assert self._writer is not None
        self._writer.write(lambda: self._publish_as_core(name, manifest), done=published, failed=failed,
                           label=f"publish the synced tables of plugin {name}")
        return True

    def _core(self) -> Any:
        """``with self._core():`` the host's own work, not attributed to a plugin (see :func:`core_work`)."""
        return self.tripwire.core_call() if self.tripwire is not None else contextlib.nullcontext()

    def _publish_as_core(self, name: str, manifest: Manifest) -> None:
        with self._core():
            self.data.publish_synced_tables(name, manifest)

    @contextlib.contextmanager
    def _activation_marker(self, name: str, manifest: Manifest) -> Iterator[None]:
        """A file that says the plugin's code is running for its import or activation: a crash meanwhile
        disables the plugin at the next start (see :meth:`start`)."""
        marker = marker_path(self._markers_dir, name)
        marker.write_text(f"activating {name} {manifest.version} at {datetime.now(timezone.utc).isoformat()}\n")
        try:
            yield
        finally:
            marker.unlink(missing_ok=True)

    def _import_and_register(self, record: PluginRecord,
                             manifest: Manifest) -> tuple[ModuleType, dict[str, Any]] | None:
        """Import the plugin's code and register its hooks; None (the plugin marked) if either failed."""
        name = record.name
        data_dir = Path(self.home.plugin_data_dir) / name
        if self.tripwire is not None:
            grants = PluginGrants.from_permissions(self.gate(manifest).effective(), self.policy.grants_for(name))
            self.tripwire.register(name, record.path, data_dir, grants)
        what = f"importing {manifest.main}"
        fresh = self.started
        outcome = run_watched(name, what, lambda: loader.import_plugin(manifest.ident, record.path, manifest.main,
                                                                       fresh=fresh))
        if outcome.status == "hung":
            self.mark_hung(name, what, outcome.seconds)
            return None
        if outcome.status == "raised":
            library = missing_library(outcome.error) if outcome.error is not None else None
            if library is not None:  # one line naming the library: the stack would only confuse a rep
                log.debug("plugin %s: %s\n%s", name, what, outcome.traceback)
                self.mark_failed(name, what, None, message=missing_library_message(name, library))
            else:
                self.mark_failed(name, what, outcome.traceback)
            return None
        module = outcome.value
        try:
            impls = self.hooks.register(name, module)
        except Exception:
            loader.purge(manifest.ident)
            self.mark_failed(name, "registering its hooks", traceback.format_exc())
            return None
        return module, impls

    def _publishing_failed(self, name: str, manifest: Manifest, module: ModuleType, tb: str) -> None:
        self.hooks.unregister(name, module)
        loader.purge(manifest.ident)
        self.mark_failed(name, "publishing its synced tables", tb)

    def _activate(self, record: PluginRecord, manifest: Manifest, module: ModuleType, impls: dict[str, Any]) -> None:
        """Its tables are published: build the plugin's ctx and runtime and call its ``crm_activate``."""
        name = record.name
        data_dir = Path(self.home.plugin_data_dir) / name
        ctx, resources = build_context(
            manifest=manifest, services=self.core.services, db_path=Path(self.home.db_path),
            data_dir=data_dir, policy_permits=self.policy.permits,
            role=lambda: self.role, publish=self._publish, subscribe=self.hooks.subscribe,
            read_settings=lambda: self._settings.values(manifest),
            write_setting=lambda key, value: self._settings.set(manifest, key, value),
            api_client=self._api_client, tripwire=self.tripwire,
            add_disposer=lambda fn: self.add_disposer(name, fn), ui=lambda: self._plugin_ui(name))
        self.hooks.runtimes[name] = PluginRuntime(module=module, ctx=ctx, resources=resources, impls=impls)
        del module, ctx, resources
        result = self.hooks.call(name, "crm_activate", watched=True)
        if result is FAILED:
            return
        record.permissions = self.hooks.runtimes[name].resources.gate.effective()
        record.state, record.error = PluginState.ACTIVE, None
        log.info("plugin %s %s activated", name, manifest.version)
        self.notify(name, "activated")
        self.notify(name, "state_changed")

    # ------------------------------------------------------------------ failing and unloading

    def mark_failed(self, name: str, what: str, tb: str | None, *, message: str | None = None) -> None:
        """Tear the plugin down and record why: ``tb`` (a traceback), or ``message`` alone when it says it all.
        The teardown runs the Qt adapter's disposers: on the GUI thread, wherever the plugin raised."""
        self.on_main_thread(lambda: self._mark_failed_now(name, what, tb, message=message))

    def _mark_failed_now(self, name: str, what: str, tb: str | None, *, message: str | None = None) -> None:
        with self.lock:
            record = self.records.get(name)
            if record is None:
                return
            was_active = record.state is PluginState.ACTIVE
            tb = tb or ""
            last = message or (tb.strip().splitlines()[-1] if tb.strip() else "error")
            log.error("plugin %s failed in %s: %s", name, what, last)
            self.teardown(name, run_deactivate=was_active and what != "crm_deactivate")
            record.state = PluginState.FAILED
            record.error = message if message else f"{what} raised {last}\n\n{tb}"
            self.notify(name, "failed")
            self.notify(name, "state_changed")

    def mark_hung(self, name: str, what: str, seconds: float) -> None:
        """The plugin's ``what`` did not return within ``seconds``: unload it without running any more
        of its code, and keep it disabled at the next start (like a crash during activation)."""
        reason = (f"hung: {what} did not return within {seconds:g} s (limit: {TIMEOUT_HINT}); disabled; "
                  f"fix or update it, then `crm-desktop plugin enable {name}`")
        with self.lock:
            record = self.records.get(name)
            if record is None:
                return
            log.error("plugin %s %s", name, reason)
            try:
                self.state_file.set_disabled(name, reason)
            except OSError as exc:
                log.error("could not record plugin %s as hung in %s: %s", name, self.state_file.path, exc)
            self.teardown(name, run_deactivate=False, run_plugin_code=False)
            record.state = PluginState.FAILED
            record.error = reason
            self.notify(name, "failed")
            self.notify(name, "state_changed")

    def _dispose_one(self, name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # one bad disposer must not keep the others from running
            log.exception("a disposer of plugin %s failed", name)

    @core_work
    def teardown(self, name: str, *, run_deactivate: bool = True, run_plugin_code: bool = True) -> None:
        """Deactivate, run disposers, drop subscriptions, unregister hooks, purge modules.

        ``run_plugin_code=False`` (a hung plugin) skips its deactivate hook and disposers."""
        pending = self._pending.pop(name, None)
        if pending is not None and pending.module is not None:
            # imported, its tables not published yet: no ctx, no hook ran
            self.hooks.unregister(name, pending.module)
            del pending
        rt = self.hooks.runtimes.get(name)
        record = self.records.get(name)
        ident = record.manifest.ident if record is not None and record.manifest is not None else None
        if rt is None:
            if self.tripwire is not None:
                self.tripwire.unregister(name)
            if ident:
                loader.purge(ident)
            return
        self.notify(name, "deactivating")
        if run_deactivate and run_plugin_code:
            outcome = self.hooks.call_deactivate(name)
            if outcome is not None and outcome.status == "raised":
                log.error("plugin %s: crm_deactivate raised %s", name, outcome.traceback.strip().splitlines()[-1])
            elif outcome is not None and outcome.status == "hung":
                reason = (f"hung: crm_deactivate did not return within {outcome.seconds:g} s; disabled; "
                          f"fix or update it, then `crm-desktop plugin enable {name}`")
                log.error("plugin %s %s", name, reason)
                run_plugin_code = False
                try:
                    self.state_file.set_disabled(name, reason)
                except OSError:
                    pass
            del outcome
        if run_plugin_code:
            for disposer in reversed(rt.disposers):
                self._dispose_one(name, disposer)
        rt.disposers.clear()
        if self.tripwire is not None:
            self.tripwire.unregister(name)  # after its deactivate and disposers, which are still watched
        rt.resources.close()
        self.hooks.drop_subscriptions(name)
        self.hooks.unregister(name, rt.module)
        for base in bases_of(name):
            try:
                base.registry.dispose()
                base.metadata.clear()
            except Exception:
                log.exception("disposing the models of plugin %s failed", name)
        self.hooks.runtimes.pop(name, None)
        rt.impls.clear()
        del rt
        if ident:
            loader.purge(ident)

    # ------------------------------------------------------------------ live lifecycle

    def reinspect(self, name: str) -> PluginRecord:
        """Read the plugin's folder again (the code or manifest may have changed)."""
        old = self.records[name]
        candidate = discovery.inspect_folder(old.path, old.source)
        if candidate.manifest is not None and candidate.manifest.name != name:
            candidate.error = f"plugin.json now names {candidate.manifest.name!r}, was {name!r}"
        candidate.name = name
        new = self.new_record(candidate)
        self.records[name] = new
        return new

    def active_dependents(self, name: str) -> list[str]:
        manifests = {n: r.manifest for n, r in self.records.items() if r.manifest is not None}
        return [d for d in dependents_of(name, manifests) if d in self.hooks.runtimes]

    def _load_if_eligible(self, name: str, then: Callable[[], None] | None = None) -> None:
        if name in self._eligible:
            self.resolve_and_load([name], then)
        else:
            self.notify(name, "state_changed")
            if then is not None:
                then()

    @core_work
    def enable(self, name: str) -> PluginRecord:
        with self.lock:
            self.record(name)
            self.state_file.set_enabled(name)
            if name in self.hooks.runtimes or name in self._pending:
                return self.records[name]  # loaded, or its load is waiting for the writer
            self.reinspect(name)
            self._load_if_eligible(name, lambda: self.retry_dependents(name))
            return self.records[name]

    def retry_dependents(self, name: str) -> None:
        """``name`` is active now: load the plugins that were waiting for it."""
        if self.records[name].state is not PluginState.ACTIVE:
            return
        waiting = [n for n, r in self.records.items() if r.state is PluginState.ERROR and r.manifest is not None
                   and name in r.manifest.dependencies.plugins]
        for dependent in waiting:
            self.reinspect(dependent)
            if dependent in self._eligible:
                self.resolve_and_load([dependent])

    @core_work
    def disable(self, name: str, *, persist: bool = True) -> PluginRecord:
        with self.lock:
            record = self.record(name)
            if persist:
                self.state_file.set_disabled(name)
            for dependent in reversed(self.active_dependents(name)):
                self.teardown(dependent)
                self.set_state(dependent, PluginState.ERROR, f"needs plugin {name!r}, which is disabled")
            self.teardown(name)
            self.set_state(name, PluginState.DISABLED, None)
            return record

    @core_work
    def reload(self, name: str) -> PluginRecord:
        with self.lock:
            self.record(name)
            dependents = self.active_dependents(name)
            for dependent in reversed(dependents):
                self.teardown(dependent)
            self.teardown(name)
            self.reinspect(name)

            def load_dependents() -> None:
                for dependent in dependents:
                    self.reinspect(dependent)
                    if dependent in self._eligible:
                        self.resolve_and_load([dependent])

            self._load_if_eligible(name, load_dependents)
            return self.records[name]

    def unload_with_dependents(self, name: str) -> None:
        """Unload ``name`` and the active plugins that need it (before its folder is replaced)."""
        if name in self.records:
            for dependent in reversed(self.active_dependents(name)):
                self.teardown(dependent)
            self.teardown(name)

    def load_folder(self, folder: Path, name: str) -> PluginRecord:
        """The user plugin ``name`` now lives in ``folder``: enable it, record it, load it, and load
        the plugins that were waiting for it."""
        candidate = discovery.inspect_folder(folder, "user")
        self.state_file.set_enabled(name)
        self.records[name] = self.new_record(candidate)
        self._load_if_eligible(name, lambda: self.retry_dependents(name))
        return self.records[name]
