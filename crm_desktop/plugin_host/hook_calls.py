"""Calling plugins' hooks: one plugin at a time, each implementation in its own guard.

pluggy would call every plugin's implementation in one chain and stop at the first exception;
the host never lets one plugin's error reach another. :class:`HookCaller` owns the pluggy
``PluginManager`` and the live parts of each loaded plugin (:class:`PluginRuntime`), and:

* registers a plugin's module, refusing ``@hookimpl`` options the host would silently ignore
  (``hookwrapper``, ``wrapper``, ``tryfirst``, ``trylast``, ``specname``: docs/plugin-hooks.md,
  "Hook options") and hooks that no spec defines;
* calls one plugin's implementation of a hook in its guard (:meth:`HookCaller.call`): an
  exception marks only that plugin failed; ``watched=True`` runs it on a watchdog thread
  (:mod:`.watchdog`), and a call that does not return in time marks the plugin hung;
* reads each plugin's contributions (menu actions, panels, record actions, CLI commands),
  checked for type and filtered by permission;
* forwards the event bus's events to ``crm_event`` and to handlers subscribed through
  ``ctx.events``.

What failing means (tearing the plugin down, its state) is the registry's: it is handed in as
``on_failed`` / ``on_hung``. No Qt here. ``CRM_TRACE_PLUGINS=1`` logs every call with its
plugin and duration.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Protocol, TypeVar

import pluggy

from crm_desktop.plugin_api import hookspecs
from crm_desktop.plugin_api.context import PluginContext
from crm_desktop.plugin_api.contributions import CliCommand, MenuAction, Panel, RecordAction
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host.facade import ContextResources
from crm_desktop.plugin_host.watchdog import Outcome, run_watched

log = logging.getLogger(__name__)
trace_log = logging.getLogger("crm_desktop.plugin_host.trace")

TRACE_ENV = "CRM_TRACE_PLUGINS"

#: pluggy options the host does not honour: it calls each plugin's implementation on its own,
#: in its guard, so there is no chain to wrap or order, and a hook is found by its name
UNSUPPORTED_HOOKIMPL_OPTIONS = ("hookwrapper", "wrapper", "tryfirst", "trylast", "specname")

T = TypeVar("T")


class _Failed:
    """The type of :data:`FAILED`."""

    def __repr__(self) -> str:
        return "FAILED"


#: what :meth:`HookCaller.call` returns when the plugin's code raised or hung
FAILED = _Failed()


class FailHandler(Protocol):
    """``on_failed(name, what, traceback, message=None)``: the plugin's code raised in ``what``."""

    def __call__(self, name: str, what: str, tb: str | None, *, message: str | None = None) -> None: ...


#: ``on_hung(name, what, seconds)``: the plugin's ``what`` did not return within ``seconds``
HungHandler = Callable[[str, str, float], None]


@dataclass
class PluginRuntime:
    """What exists only while a plugin is loaded; dropped whole on unload."""

    module: ModuleType
    ctx: PluginContext
    resources: ContextResources
    #: hook name -> the plugin's pluggy HookImpl
    impls: dict[str, Any]
    disposers: list[Callable[[], Any]] = field(default_factory=list)
    #: the plugin's ``ctx.ui``, made on first use
    ui: Any = None


class HookCaller:
    """The pluggy manager, the loaded plugins' runtimes, and every call into plugin code (module docstring)."""

    def __init__(self, *, on_failed: FailHandler, on_hung: HungHandler, allowed: Callable[[str, str], bool]):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.spec_names = {n for n in dir(hookspecs) if n.startswith("crm_")}
        #: the loaded plugins, by name (the registry adds and removes them)
        self.runtimes: dict[str, PluginRuntime] = {}
        self._subscriptions: list[tuple[str, str, Callable[[Any], Any]]] = []
        self._on_failed = on_failed
        self._on_hung = on_hung
        self._allowed = allowed
        self.trace = os.environ.get(TRACE_ENV, "") not in ("", "0")

    # ------------------------------------------------------------------ registering

    def register(self, name: str, module: ModuleType) -> dict[str, Any]:
        """Register ``module`` as plugin ``name``'s hooks; returns its implementations by hook name.

        Raises :class:`PluginError` (nothing registered) for an unsupported ``@hookimpl`` option or
        an unknown hook."""
        self.reject_unsupported_options(name, module)
        unknown = sorted(a for a in dir(module) if a.startswith("crm_") and a not in self.spec_names
                         and callable(getattr(module, a)) and hasattr(getattr(module, a), hookspecs.PROJECT + "_impl"))
        if unknown:
            raise PluginError(f"plugin {name!r} implements unknown hook {unknown[0]!r}; "
                              f"known hooks: {', '.join(sorted(self.spec_names))}")
        self.pm.register(module, name=name)
        impls: dict[str, Any] = {}
        for caller in self.pm.get_hookcallers(module) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is module:
                    impls[caller.name] = impl
        return impls

    def unregister(self, name: str, module: ModuleType) -> None:
        """Forget plugin ``name``'s hooks (logged, never raised)."""
        try:
            self.pm.unregister(module, name=name)
        except Exception:
            log.exception("unregistering plugin %s from pluggy failed", name)

    def reject_unsupported_options(self, name: str, module: ModuleType) -> None:
        """Refuse a plugin whose ``@hookimpl`` uses an option the host would silently ignore
        (docs/plugin-hooks.md, "Hook options"): one error naming the plugin, hook and option."""
        for attribute in sorted(dir(module)):
            opts = self.pm.parse_hookimpl_opts(module, attribute)
            if not opts:
                continue
            used = [o for o in UNSUPPORTED_HOOKIMPL_OPTIONS if opts.get(o)]
            if used:
                hook = opts.get("specname") or attribute
                raise PluginError(
                    f"plugin {name!r}: hook {hook!r} uses @hookimpl({used[0]}=...), which crm-desktop does not "
                    f"support (each plugin's hook is called on its own, in its guard: no wrapping, ordering or "
                    f"renaming); remove it, see docs/plugin-hooks.md")

    # ------------------------------------------------------------------ calling

    def call(self, name: str, hook: str, *, watched: bool = False, **kwargs: Any) -> Any:
        """Call one plugin's implementation of ``hook`` in its guard; :data:`FAILED` if it raised.

        None when the plugin is not loaded or does not implement ``hook``. ``watched``: run it on a
        watchdog thread; a call that does not return in time marks the plugin hung (and
        :data:`FAILED` is returned)."""
        rt = self.runtimes.get(name)
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
            if watched:
                outcome = run_watched(name, hook, lambda: function(**args))
                if outcome.status == "hung":
                    self._on_hung(name, hook, outcome.seconds)
                    return FAILED
                if outcome.status == "raised":
                    self._on_failed(name, hook, outcome.traceback)
                    return FAILED
                return outcome.value
            return function(**args)
        except (Exception, SystemExit, KeyboardInterrupt):  # plugin code: it ends only the plugin
            self._on_failed(name, hook, traceback.format_exc())
            return FAILED
        finally:
            if self.trace:
                trace_log.info("hook %s plugin %s %.3f ms", hook, name, (time.perf_counter() - start) * 1000)

    def call_deactivate(self, name: str) -> Outcome | None:
        """Run the plugin's ``crm_deactivate`` on the watchdog and return what happened (None: it has
        none). Marks nothing: the teardown it is part of decides."""
        rt = self.runtimes.get(name)
        if rt is None or "crm_deactivate" not in rt.impls:
            return None
        impl = rt.impls["crm_deactivate"]
        kwargs = {k: rt.ctx for k in impl.argnames}
        function = impl.function
        del rt, impl
        return run_watched(name, "crm_deactivate", lambda: function(**kwargs))

    def guard(self, name: str, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run ``fn`` in plugin ``name``'s guard: on an exception the plugin is marked failed, None returned."""
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except (Exception, SystemExit, KeyboardInterrupt):  # plugin code: it ends only the plugin
            self._on_failed(name, what, traceback.format_exc())
            return None
        finally:
            if self.trace:
                trace_log.info("call %s plugin %s %.3f ms", what, name, (time.perf_counter() - start) * 1000)

    # ------------------------------------------------------------------ contributions

    def contributions(self, name: str, hook: str, kind: type[T], **kwargs: Any) -> list[T]:
        """The plugin's ``hook`` result checked to be a list of ``kind`` (else the plugin fails and
        [] is returned), without the items whose ``permission`` the plugin may not use."""
        result = self.call(name, hook, **kwargs)
        if result is None or result is FAILED:
            return []
        if not isinstance(result, (list, tuple)) or not all(isinstance(i, kind) for i in result):
            bad = next((i for i in result if not isinstance(i, kind)), result) \
                if isinstance(result, (list, tuple)) else result
            self._on_failed(name, hook, f"{hook} returned {bad!r}, expected a list of {kind.__name__}\n")
            return []
        return [i for i in result
                if getattr(i, "permission", None) is None or self._allowed(name, getattr(i, "permission"))]

    def menu_actions(self, name: str) -> list[MenuAction]:
        return self.contributions(name, "crm_menu_actions", MenuAction)

    def panels(self, name: str) -> list[Panel]:
        return self.contributions(name, "crm_panels", Panel)

    def record_actions(self, name: str, entity: str) -> list[RecordAction]:
        return [a for a in self.contributions(name, "crm_record_actions", RecordAction, entity=entity)
                if a.entity == entity]

    def cli_commands(self, name: str) -> list[CliCommand]:
        return self.contributions(name, "crm_cli_commands", CliCommand)

    # ------------------------------------------------------------------ events

    def subscribe(self, plugin: str, event_name: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """``ctx.events.subscribe``: call ``handler(event)`` (guarded) for ``event_name``
        (``"contact."``: a prefix; ``"*"``: every event); returns the unsubscribe function."""
        entry = (plugin, event_name, handler)
        self._subscriptions.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)

        return unsubscribe

    def drop_subscriptions(self, plugin: str) -> None:
        """Forget every handler ``plugin`` subscribed (it is unloading)."""
        self._subscriptions = [s for s in self._subscriptions if s[0] != plugin]

    def dispatch(self, event: Any, active: Callable[[str], bool]) -> None:
        """Hand a bus event to every ``active`` plugin's ``crm_event`` and to the subscribed handlers;
        a plugin's own events go to the others only."""
        for name in list(self.runtimes):
            if event.source == f"plugin:{name}":
                continue
            if active(name):
                self.call(name, "crm_event", event=event)
        for plugin, wanted, handler in list(self._subscriptions):
            if event.source == f"plugin:{plugin}":
                continue
            if event.name == wanted or (wanted.endswith(".") and event.name.startswith(wanted)) or wanted == "*":
                self.guard(plugin, f"event handler for {event.name}", handler, event)
