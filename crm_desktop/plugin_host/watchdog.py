"""Running plugin code that may never return, or may try to end the process.

:func:`run_watched` runs one piece of plugin code (importing its module, ``crm_activate``,
``crm_deactivate``) on a worker thread and waits for it at most :func:`plugin_timeout`
seconds (``CRM_DESKTOP_PLUGIN_TIMEOUT``, default 10). The outcome says whether it returned,
raised (any ``BaseException``: ``KeyboardInterrupt`` and ``SystemExit`` raised by plugin code
end only that plugin) or hung.

Why a thread and not a signal or a child process: a signal (``SIGALRM``) interrupts only the
main thread and is swallowed by a plugin's bare ``except:``; a child process cannot share the
plugin's live objects with the app. A thread cannot be killed either, so a hung one is
*abandoned*: it is a daemon thread, so it never keeps the process from exiting; the host
unregisters the plugin and records it as hung so the next start keeps it disabled. The code
it is stuck in may still wake up later; in-process Python is not a sandbox (docs/reliability.md).

While plugin code runs on such a thread, ``os._exit`` raises :class:`PluginExitAttempt` in
that thread instead of ending the process without a word.
"""

from __future__ import annotations

import os
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

TIMEOUT_ENV = "CRM_DESKTOP_PLUGIN_TIMEOUT"
DEFAULT_TIMEOUT = 10.0

_local = threading.local()
_guard_lock = threading.Lock()
_real_exit: Callable[[int], Any] | None = None


class PluginExitAttempt(SystemExit):
    """Plugin code called ``os._exit``; raised in its thread instead."""


def plugin_timeout() -> float:
    """Seconds a plugin's import, ``crm_activate`` or ``crm_deactivate`` may take."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def current_plugin() -> str | None:
    """The plugin whose watched code runs on this thread, if any."""
    return getattr(_local, "plugin", None)


def _guarded_exit(code: int = 0) -> Any:
    plugin = current_plugin()
    if plugin is not None:
        raise PluginExitAttempt(f"plugin {plugin} called os._exit({code}); the app keeps running")
    assert _real_exit is not None
    return _real_exit(code)


def install_exit_guard() -> None:
    """Make ``os._exit`` refuse to end the process from a watched plugin thread (idempotent)."""
    global _real_exit
    with _guard_lock:
        if _real_exit is None:
            _real_exit = os._exit
            os._exit = _guarded_exit  # type: ignore[assignment]


@dataclass
class Outcome:
    """What happened to one watched call."""

    status: str  # "ok" | "raised" | "hung"
    value: Any = None
    traceback: str = ""
    seconds: float = 0.0
    #: the exception, when ``status`` is "raised" (e.g. to name a missing library)
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_watched(plugin: str, what: str, fn: Callable[[], Any], timeout: float | None = None) -> Outcome:
    """Run ``fn()`` for ``plugin`` on a daemon thread; give up waiting after ``timeout`` seconds."""
    install_exit_guard()
    limit = plugin_timeout() if timeout is None else timeout
    box: dict[str, Any] = {}

    def target() -> None:
        _local.plugin = plugin
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: B036 - plugin code: KeyboardInterrupt/SystemExit end only the plugin
            box["traceback"] = traceback.format_exc()
            box["error"] = exc
        finally:
            _local.plugin = None

    thread = threading.Thread(target=target, name=f"crm-plugin {plugin}: {what}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return Outcome("hung", seconds=limit)
    if "traceback" in box:
        return Outcome("raised", traceback=box["traceback"], error=box.get("error"))
    return Outcome("ok", value=box.get("value"))
