"""The one way onto the GUI thread: :class:`MainThreadDispatcher`.

Services commit on whatever thread ran them (an import runs on a worker) and publish their
events right there. Anything that may touch Qt (the main window, the plugin host and its Qt
adapter, every plugin's ``crm_event``) must run on the GUI thread instead, or Qt warns
"Cannot create children for a parent that is in a different thread" and worse.

The composition root installs one dispatcher on the event bus
(:meth:`EventBus.set_main_thread_dispatch`); the Qt-free layers only ever see it as a plain
callable ``dispatch(fn)``, so they stay free of Qt. Called on the GUI thread it runs ``fn`` at
once (the order of events within one thread is kept); from any other thread it queues ``fn``
for the GUI thread's event loop.
"""

from __future__ import annotations

import logging
from typing import Callable

from PySide6.QtCore import QObject, QThread, Qt, Signal

log = logging.getLogger(__name__)


class MainThreadDispatcher(QObject):
    """``dispatcher(fn)`` runs ``fn()`` on the thread this object lives in (the GUI thread)."""

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._closed = False
        self._posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def __call__(self, fn: Callable[[], object]) -> None:
        if self._closed:
            log.debug("dispatcher closed: dropped %r", fn)
            return
        if QThread.currentThread() is self.thread() or QThread.currentThread() == self.thread():
            self._run(fn)
            return
        try:
            self._posted.emit(fn)
        except RuntimeError:  # the window (our parent) is gone: nothing is left to notify
            log.debug("dispatcher deleted: dropped %r", fn)

    def close(self) -> None:
        """Drop everything from now on (the window is closing)."""
        self._closed = True

    def _run(self, fn: Callable[[], object]) -> None:
        if self._closed:
            return
        try:
            fn()
        except Exception:  # one failing notification must not stop the event loop's others
            log.exception("main-thread call %r failed", fn)


def install(events, parent: QObject | None = None) -> MainThreadDispatcher:
    """Make a dispatcher and install it on the event bus ``events``; returns it."""
    dispatcher = MainThreadDispatcher(parent)
    events.set_main_thread_dispatch(dispatcher)
    return dispatcher


def uninstall(events, dispatcher: MainThreadDispatcher) -> None:
    """Take ``dispatcher`` off the bus again (if it is still the one installed) and close it."""
    if events.main_thread_dispatch is dispatcher:
        events.set_main_thread_dispatch(None)
    dispatcher.close()
