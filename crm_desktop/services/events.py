"""A small, thread-safe publish/subscribe bus for domain events.

Services publish after a transaction commits (never for a rolled-back change):
``contact.created``, ``deal.stage_changed``, ``activity.logged`` and so on
(see ``docs/events.md``). The plugin host forwards them to ``crm_event``; the
UI refreshes views from them. Handlers that raise are logged and skipped:
one bad subscriber never stops the others or the writer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """``name`` like ``contact.created``; ``payload`` plain data (ids, field values);
    ``source`` the actor or plugin that caused it."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = "core"


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # a subscriber's bug must not break the writer
                log.exception("event subscriber %r failed on %s", subscriber, event.name)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
