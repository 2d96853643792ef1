"""Plugin states, the records the UI reads, and what persists between runs.

* :class:`PluginState` / :class:`PluginRecord`: what the admin panel and
  ``plugin list`` show.
* :class:`StateFile`: which plugins the user disabled (``<home>/plugins-state.json``),
  and why, when the app disabled one itself.
* Activation markers: ``<home>/plugin-data/.activating-<name>`` exists only
  while a plugin activates; one left over at start means that plugin took the
  process down, so it is disabled with a message saying so.
* :func:`check_plugin`: ``crm-desktop plugin check`` (activate, build, reload, look for leaks).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import weakref
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Sequence

from crm_desktop.plugin_host.manifest import Manifest

log = logging.getLogger(__name__)

STATE_FILE = "plugins-state.json"
MARKER_PREFIX = ".activating-"


class PluginState(StrEnum):
    """Where a plugin stands."""

    ACTIVE = "active"            # imported and activated
    ENABLED = "enabled"          # would load at start; not loaded by this command (no plugin code ran)
    DISABLED = "disabled"        # turned off by the user (or after a crash or hang during activation)
    FAILED = "failed"            # its code raised (import, a hook, a callback): see ``error``
    INCOMPATIBLE = "incompatible"  # wrong app or Python version, or a missing Python package
    BLOCKED = "blocked"          # the admin policy refuses it
    ERROR = "error"              # bad manifest, duplicate name, missing/cyclic dependency, migration failed


@dataclass
class PluginRecord:
    """One plugin as the host sees it (plain data; safe to read from the UI)."""

    name: str
    version: str
    display_name: str
    author: str
    description: str
    source: str
    path: Path
    state: PluginState
    error: str | None = None
    manifest: Manifest | None = None
    permissions: list[str] = field(default_factory=list)
    #: Who vouches for the code: "first-party (ships with the app)", "key <id> (trusted)", "unsigned" (trust.py).
    publisher: str = "unsigned"
    #: The id of the key that signed the bundle it was installed from, or None.
    key_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as ``plugin list --json`` prints it."""
        return {"name": self.name, "version": self.version, "displayName": self.display_name,
                "state": self.state.value, "permissions": self.permissions, "path": str(self.path),
                "source": self.source, "publisher": self.publisher, "keyId": self.key_id, "error": self.error}


class StateFile:
    """``<home>/plugins-state.json``: ``{"disabled": {"name": "reason or empty"}}``."""

    def __init__(self, root: Path):
        self.path = Path(root) / STATE_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s); treating every plugin as enabled", self.path, exc)
            return {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def disabled(self) -> dict[str, str]:
        """Disabled plugin names -> the reason ("" when the user chose it)."""
        value = self._read().get("disabled", {})
        return dict(value) if isinstance(value, dict) else {}

    def set_disabled(self, name: str, reason: str = "") -> None:
        data = self._read()
        data.setdefault("disabled", {})[name] = reason
        self._write(data)

    def set_enabled(self, name: str) -> None:
        data = self._read()
        if name in data.get("disabled", {}):
            del data["disabled"][name]
            self._write(data)


def marker_path(markers_dir: Path, name: str) -> Path:
    """The "activating <name>" marker file."""
    return Path(markers_dir) / f"{MARKER_PREFIX}{name}"


def leftover_markers(markers_dir: Path) -> list[str]:
    """Plugins whose activation never finished in an earlier run."""
    try:
        return sorted(p.name[len(MARKER_PREFIX):] for p in Path(markers_dir).glob(MARKER_PREFIX + "*"))
    except OSError:
        return []


@dataclass
class CheckReport:
    """What ``plugin check`` found."""

    name: str
    state: str = "unknown"
    problems: list[str] = field(default_factory=list)
    contributions: dict[str, list[str]] = field(default_factory=dict)
    panels_built: list[str | None] | None = None  # a panel's title (or id)
    reloads: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "ok": self.ok, "problems": self.problems,
                "contributions": self.contributions, "panels_built": self.panels_built, "reloads": self.reloads}


ENTITIES = ("contact", "company", "lead", "deal", "activity")


def _contributions(host: Any, name: str) -> tuple[dict[str, list[str]], list[weakref.ref]]:
    refs: list[weakref.ref] = []
    out: dict[str, list[str]] = {"menu": [f"{e.title} -> {e.path}" for e in host.declared_menu(name)]}
    actions = host.menu_actions(name)
    out["menu_actions"] = [f"{a.menu} > {a.title}" for a in actions]
    panels = host.panels(name)
    out["panels"] = [f"{p.title} ({p.area}, {p.path})" for p in panels]
    record_actions = []
    for entity in ENTITIES:
        items = host.record_actions(name, entity)
        record_actions += [f"{entity}: {a.title}" for a in items]
        refs += [weakref.ref(a) for a in items]
    out["record_actions"] = record_actions
    commands = host.cli_commands(name)
    out["cli_commands"] = [c.name for c in commands]
    refs += [weakref.ref(a) for a in actions] + [weakref.ref(p) for p in panels] + [weakref.ref(c) for c in commands]
    return out, refs


def check_plugin(host: Any, name: str, *, reloads: int = 3,
                 build_panels: Callable[[Any, str], Sequence[object]] | None = None) -> CheckReport:
    """Activate ``name`` in a started headless ``host``, list and build what it contributes,
    reload it ``reloads`` times and report leaks. ``report.ok`` is False on any problem.

    ``build_panels(host, name)`` builds each panel offscreen and returns one report per panel;
    the caller injects it (the CLI passes :func:`crm_desktop.ui.plugins.check.build_panels`)
    because building widgets is Qt, and this package stays headless. Without it, panels
    are listed but not built.
    """
    from crm_desktop.plugin_host import loader

    report = CheckReport(name=name)
    record = host.records.get(name)
    if record is None:
        report.problems.append(f"no plugin named {name!r} was found")
        return report
    report.state = record.state.value
    if record.state is not PluginState.ACTIVE:
        report.problems.append(f"{name} is {record.state.value}: {record.error or ''}".strip())
        return report
    report.contributions, refs = _contributions(host, name)
    if build_panels is not None:
        try:
            built = [dataclasses.asdict(b) if dataclasses.is_dataclass(b) and not isinstance(b, type) else b
                     for b in (build_panels(host, name) or [])]
            report.panels_built = [b.get("title", b.get("id")) if isinstance(b, dict) else str(b) for b in built]
            report.problems += [f"panel {b.get('title')!r}: {b.get('error')}" for b in built
                                if isinstance(b, dict) and b.get("ok") is False]
        except Exception as exc:
            report.problems.append(f"building panels offscreen failed: {exc}")
    if host.records[name].state is not PluginState.ACTIVE:
        report.problems.append(f"{name} failed while contributing: {host.records[name].error}")
        return report
    ident = host.records[name].manifest.ident
    for i in range(reloads):
        module_ref = host.module_ref(name)
        host.reload(name)
        report.reloads += 1
        record = host.records[name]
        if record.state is not PluginState.ACTIVE:
            report.problems.append(f"reload {i + 1}: {name} is {record.state.value}: {record.error}")
            return report
        gc.collect()
        if module_ref is not None and module_ref() is not None:
            report.problems.append(f"reload {i + 1}: the old main module is still reachable "
                                   f"(something keeps a reference to it)")
        alive = [r() for r in refs if r() is not None]
        if alive:
            report.problems.append(f"reload {i + 1}: {len(alive)} object(s) returned by the old version still "
                                   f"reachable, e.g. {alive[0]!r}"[:300])
        del alive
        _, refs = _contributions(host, name)
    host.disable(name, persist=False)
    gc.collect()
    left = loader.plugin_modules(ident)
    if left:
        report.problems.append(f"modules left in sys.modules after disabling: {', '.join(left)}")
    alive = [r() for r in refs if r() is not None]
    if alive:
        report.problems.append(f"{len(alive)} contributed object(s) still reachable after disabling")
    return report
