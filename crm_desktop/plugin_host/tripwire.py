"""Runtime tripwire: audit hooks that block plain network, subprocess and stray file access by plugins.

How it works
------------
:func:`install_tripwire` adds one ``sys.addaudithook`` hook for the process
(audit hooks cannot be removed, so the :class:`Tripwire` is a singleton and
plugins are :meth:`~Tripwire.register`-ed and unregistered as they are loaded,
reloaded and removed). On the events it watches — socket connect/bind/sendto,
subprocess and ``os.system``/``exec``/``spawn``/``fork``, file opens and file
system changes — it walks the Python stack. If a frame belongs to a
registered plugin (module ``crm_plugins.<name>`` or a file under the plugin's
folder), the event is attributed to the innermost such plugin and checked
against its :class:`PluginGrants`:

* network: the manifest's ``network`` permission (or the policy grant);
* subprocess: the policy grant ``subprocess``;
* files: writes only inside the plugin's folder, its data folder and
  ``files:<folder>`` grants; reads also inside the Python installation and
  the application (``sys.prefix``, ``sys.path``), so imports keep working.

A refused event raises :class:`TripwireBlocked` (a ``PermissionError``) out of
the operation, is logged, and kept in :attr:`Tripwire.events` for the admin
panel. The host's facade wraps its own work for a plugin in
:meth:`Tripwire.core_call`, so ``ctx.http`` and ``ctx.settings`` (which check
permissions themselves) are not blocked; frames *inside* such a call that
belong to a plugin (an event handler called back) are still attributed.

What it is not
--------------
A sandbox. In-process Python cannot contain hostile code: ``ctypes`` calls the
C library directly, Qt's networking does not go through Python's ``socket``,
and code that runs with no plugin frame on the stack (a stdlib function handed
to a thread or timer, code compiled under a foreign file and module name) is
not attributed. Those bypasses are kept as expected-failure tests in
``tests/unit/test_tripwire.py``. The bundle signature and the admin policy are
the trust decision; the tripwire keeps honest plugins honest and makes
mistakes loud. See docs/security.md.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Callable, Iterable

from crm_desktop.errors import CrmError

log = logging.getLogger(__name__)

PLUGIN_PACKAGE = "crm_plugins"

NETWORK_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
    "os.startfile", "os.popen",
})
#: File system changes; the value is the positions of path arguments.
FS_CHANGE_EVENTS = {
    "os.remove": (0,), "os.rename": (0, 1), "os.mkdir": (0,), "os.rmdir": (0,), "shutil.rmtree": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.symlink": (0, 1), "os.link": (0, 1),
    "os.utime": (0,), "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (1,),
    "sqlite3.connect": (0,),
}
WATCHED = NETWORK_EVENTS | PROCESS_EVENTS | frozenset(FS_CHANGE_EVENTS) | {"open"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class TripwireBlocked(PermissionError, CrmError):
    """An operation a plugin was not granted; the message names the plugin, the operation and the grant."""


@dataclass(frozen=True)
class PluginGrants:
    """What the tripwire lets one plugin do beyond its own folders."""

    network: bool = False
    subprocess: bool = False
    paths: tuple[str, ...] = ()  # extra folders, read and write

    @classmethod
    def from_permissions(cls, permissions: Iterable[str], policy_grants: Iterable[str] = ()) -> "PluginGrants":
        """Grants from a manifest's permissions and the policy's ``grants`` for the plugin."""
        permissions, policy_grants = set(permissions), set(policy_grants)
        return cls(
            network="network" in permissions or "network" in policy_grants,
            subprocess="subprocess" in policy_grants,
            paths=tuple(sorted(g[len("files:"):] for g in policy_grants if g.startswith("files:"))),
        )


@dataclass(frozen=True)
class TripwireEvent:
    """One attributed event: what a plugin tried, and whether it was blocked."""

    plugin: str
    event: str
    detail: str
    blocked: bool
    when: float


@dataclass
class _Plugin:
    name: str
    roots: tuple[str, ...]  # real paths, each ending with os.sep
    code_root: str
    grants: PluginGrants


def _as_root(path: str | os.PathLike[str]) -> str:
    real = os.path.realpath(os.fspath(path))
    return real if real.endswith(os.sep) else real + os.sep


def _default_read_roots() -> tuple[str, ...]:
    cwd = os.path.realpath(os.getcwd())
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in sys.path:
        # The current folder (python -m, '') could be the user's home: never a blanket read root.
        if entry and os.path.isdir(entry) and os.path.realpath(entry) != cwd:
            roots.add(entry)
    roots.add(str(Path(__file__).resolve().parents[1]))  # the crm_desktop package
    if getattr(sys, "frozen", False):
        # The PyInstaller app keeps its modules in an archive inside the executable, outside
        # sys.prefix (its _internal folder): every first import of a module reads it.
        roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return tuple(sorted({_as_root(r) for r in roots}))


class _CoreCall:
    """Context manager marking the calling core frame as acting on its own authority."""

    def __init__(self, tripwire: "Tripwire"):
        self._tripwire = tripwire
        self._frame: FrameType | None = None

    def __enter__(self) -> None:
        frame = sys._getframe(1)
        if self._tripwire._plugin_of_frame(frame) is not None:
            # A plugin cannot exempt itself; the marker is only honoured from core code.
            raise TripwireBlocked(f"tripwire: plugin code may not use core_call() ({frame.f_code.co_filename})")
        self._frame = frame
        self._tripwire._marks().append(frame)

    def __exit__(self, *exc: object) -> None:
        marks = self._tripwire._marks()
        if marks and marks[-1] is self._frame:
            marks.pop()
        self._frame = None


class Tripwire:
    """The process-wide tripwire. Get it with :func:`install_tripwire`."""

    def __init__(self, max_events: int = 1000):
        self._plugins: dict[str, _Plugin] = {}
        self._by_ident: dict[str, _Plugin] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._events: collections.deque[TripwireEvent] = collections.deque(maxlen=max_events)
        self._read_roots: tuple[str, ...] = _default_read_roots()
        self.listeners: list[Callable[[TripwireEvent], None]] = []
        #: "enforce" blocks; "log" only records (e.g. while an admin investigates a plugin).
        self.mode = "enforce"
        self._installed = False

    # -- registration
    def register(self, name: str, folder: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None,
                 grants: PluginGrants = PluginGrants()) -> None:
        """Watch plugin ``name`` whose code is in ``folder``; (re)registering replaces its grants."""
        roots = [_as_root(folder)]
        if data_dir is not None:
            roots.append(_as_root(data_dir))
        roots.extend(_as_root(p) for p in grants.paths)
        with self._lock:
            # Copy-on-write: the hook reads these dicts without the lock.
            self._plugins = {**self._plugins, name: _Plugin(name, tuple(roots), roots[0], grants)}
            self._by_ident = {n.replace("-", "_"): p for n, p in self._plugins.items()}

    def unregister(self, name: str) -> None:
        """Stop watching ``name`` (on disable, uninstall, or before a reload registers it again)."""
        with self._lock:
            self._plugins = {k: v for k, v in self._plugins.items() if k != name}
            self._by_ident = {n.replace("-", "_"): p for n, p in self._plugins.items()}

    def registered(self) -> list[str]:
        """Names of the plugins being watched."""
        return sorted(self._plugins)

    def add_read_root(self, folder: str | os.PathLike[str]) -> None:
        """Let every plugin read under ``folder`` (e.g. where plugin dependencies are installed)."""
        self._read_roots = tuple(sorted({*self._read_roots, _as_root(folder)}))

    @property
    def events(self) -> list[TripwireEvent]:
        """Recent attributed events, oldest first."""
        return list(self._events)

    def core_call(self) -> _CoreCall:
        """``with tripwire.core_call(): ...`` — the facade's own work for a plugin is not attributed to it."""
        return _CoreCall(self)

    # -- attribution
    def _marks(self) -> list[FrameType]:
        marks = getattr(self._local, "marks", None)
        if marks is None:
            marks = self._local.marks = []
        return marks

    def _plugin_of_frame(self, frame: FrameType) -> _Plugin | None:
        plugins = self._plugins
        if not plugins:
            return None
        module = frame.f_globals.get("__name__") or ""
        if module.startswith(PLUGIN_PACKAGE + "."):
            # The loader names the package after the plugin with '-' as '_'.
            found = self._by_ident.get(module.split(".")[1])
            if found is not None:
                return found
        filename = frame.f_code.co_filename
        for plugin in plugins.values():
            if filename.startswith(plugin.code_root):
                return plugin
        return None

    def attribute(self, frame: FrameType | None) -> _Plugin | None:
        """The innermost registered plugin with code on the stack from ``frame`` outwards, if any."""
        marks = self._marks()
        while frame is not None:
            if marks and any(frame is m for m in marks):
                return None  # outer frames are the core acting on its own authority
            plugin = self._plugin_of_frame(frame)
            if plugin is not None:
                return plugin
            frame = frame.f_back
        return None

    # -- the hook
    def _hook(self, event: str, args: tuple) -> None:
        if event not in WATCHED or not self._plugins:
            return
        local = self._local
        if getattr(local, "busy", False):
            return  # our own logging or a listener opened a file
        local.busy = True
        try:
            plugin = self.attribute(sys._getframe(1))
            if plugin is None:
                return
            refusal = self._refusal(plugin, event, args)
            if refusal is None:
                return
            what, grant = refusal
            detail = f"tripwire: plugin {plugin.name} may not {what} (needs {grant})"
            blocked = self.mode == "enforce"
            record = TripwireEvent(plugin.name, event, what, blocked, time.time())
            self._events.append(record)
            log.warning("%s%s", detail, "" if blocked else " [log only]")
            for listener in list(self.listeners):
                try:
                    listener(record)
                except Exception:
                    log.exception("tripwire listener failed")
        except TripwireBlocked:
            raise
        except Exception:  # a bug here must not break every open() in the process
            log.exception("tripwire hook failed on %s", event)
            return
        finally:
            local.busy = False
        if blocked:
            raise TripwireBlocked(detail)

    def _refusal(self, plugin: _Plugin, event: str, args: tuple) -> tuple[str, str] | None:
        """(what was tried, which grant is missing), or None if allowed."""
        if event in NETWORK_EVENTS:
            if plugin.grants.network:
                return None
            address = args[1] if len(args) > 1 else "?"
            verb = "listen on" if event == "socket.bind" else "connect to"
            return f"{verb} {address!r}", "the 'network' permission"
        if event in PROCESS_EVENTS:
            if plugin.grants.subprocess:
                return None
            return f"start a process ({event} {_short(args[0] if args else '')})", "the policy grant 'subprocess'"
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if path is None or isinstance(path, int):
                return None  # an already-open descriptor
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
            return self._path_refusal(plugin, path, writing)
        positions = FS_CHANGE_EVENTS.get(event)
        if positions:
            for i in positions:
                if i < len(args) and args[i] not in (None, "", ":memory:", b"", b":memory:") \
                        and not isinstance(args[i], int):
                    refusal = self._path_refusal(plugin, args[i], True, event)
                    if refusal:
                        return refusal
        return None

    def _path_refusal(self, plugin: _Plugin, path: object, writing: bool, event: str = "open") -> tuple[str, str] | None:
        try:
            real = os.path.realpath(os.fsdecode(path))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        probe = real + os.sep
        if any(probe.startswith(root) for root in plugin.roots):
            return None
        if not writing and any(probe.startswith(root) for root in self._read_roots):
            return None
        verb = ("write" if event == "open" else event.split(".")[-1]) if writing else "read"
        return f"{verb} {real} (outside its folders)", "a policy grant 'files:<folder>'"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TRIPWIRE: Tripwire | None = None
_INSTALL_LOCK = threading.Lock()


def install_tripwire() -> Tripwire:
    """The process's :class:`Tripwire`, adding its audit hook on the first call (idempotent)."""
    global _TRIPWIRE
    with _INSTALL_LOCK:
        if _TRIPWIRE is None:
            _TRIPWIRE = Tripwire()
        if not _TRIPWIRE._installed:
            sys.addaudithook(_TRIPWIRE._hook)
            _TRIPWIRE._installed = True
    return _TRIPWIRE


def current_tripwire() -> Tripwire | None:
    """The installed tripwire, or ``None`` if :func:`install_tripwire` was never called."""
    return _TRIPWIRE
