"""Hand-over from the record action "Ask the assistant about this" to the open panel.

The action runs outside the panel (from a record's context menu); it leaves the
record here and tells every live panel, which shows it as the subject of the next
question. A panel built later picks up the last request. Plain data only, and
weak references, so a reload leaves nothing of the old version reachable.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

_panels: "weakref.WeakSet[Any]" = weakref.WeakSet()
_pending: dict[str, tuple[str, str, str]] = {}  # plugin name -> (entity, id, label)


def register(panel: Any) -> None:
    """A panel that wants focus requests (it has ``focus_record(entity, id, label)``)."""
    _panels.add(panel)


def request(ctx: Any, entity: str, record_id: str, label: str) -> int:
    """Send a record to the panels; returns how many took it (0: kept for the next panel)."""
    _pending[ctx.name] = (entity, record_id, label)
    taken = 0
    for panel in list(_panels):
        focus: Callable[[str, str, str], None] | None = getattr(panel, "focus_record", None)
        if focus is not None:
            focus(entity, record_id, label)
            taken += 1
    return taken


def pending(ctx: Any) -> tuple[str, str, str] | None:
    return _pending.get(ctx.name)


def clear(ctx: Any) -> None:
    _pending.pop(ctx.name, None)
