"""A small, thread-safe publish/subscribe bus for domain events.

Services publish after a transaction commits (never for a rolled-back change):
``contact.created``, ``deal.stage_changed``, ``activity.logged`` and so on
(see ``docs/events.md``). The plugin host forwards them to ``crm_event``; the
UI refreshes views from them. Handlers that raise are logged and skipped:
one bad subscriber never stops the others or the writer.

A commit may happen on any thread (an import runs on a worker). Subscribers that may touch
the GUI (the main window, the plugin host, every ``crm_event``) subscribe with
``main_thread=True``: they are called through the one "dispatch to main" callable the
composition root installs (:meth:`EventBus.set_main_thread_dispatch`), so they always run on
the GUI thread. Without a GUI (command line, tests of services) they are called inline.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable

from crm_desktop.domain.events import Event as Event  # (defined in domain so plugin_api can export it)

log = logging.getLogger(__name__)




Subscriber = Callable[[Event], None]
#: ``dispatch(fn)`` runs ``fn()`` on the GUI thread (at once when called there)
MainThreadDispatch = Callable[[Callable[[], None]], None]


def _inline(fn: Callable[[], None]) -> None:
    fn()


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self._lock = threading.Lock()
        self._dispatch: MainThreadDispatch | None = None

    def set_main_thread_dispatch(self, dispatch: MainThreadDispatch | None) -> None:
        """Install (None: remove) the callable that runs a function on the GUI thread."""
        self._dispatch = dispatch

    @property
    def main_thread_dispatch(self) -> MainThreadDispatch | None:
        return self._dispatch

    def call_on_main_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the GUI thread (inline when no GUI installed a dispatcher)."""
        (self._dispatch or _inline)(fn)

    def subscribe(self, subscriber: Subscriber, *, main_thread: bool = False) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again.

        ``main_thread=True``: always call it on the GUI thread (see the module docstring).
        """
        entry = (subscriber, main_thread)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for entry in subscribers:
            subscriber, main_thread = entry
            if main_thread:
                self.call_on_main_thread(functools.partial(self._deliver_if_subscribed, entry, event))
            else:
                self._deliver(subscriber, event)

    def _deliver_if_subscribed(self, entry: tuple[Subscriber, bool], event: Event) -> None:
        with self._lock:
            subscribed = entry in self._subscribers
        if subscribed:  # who unsubscribed while the call was queued (a closed window) gets nothing
            self._deliver(entry[0], event)

    def _deliver(self, subscriber: Subscriber, event: Event) -> None:
        try:
            subscriber(event)
        except Exception:  # a subscriber's bug must not break the writer
            log.exception("event subscriber %r failed on %s", subscriber, event.name)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
