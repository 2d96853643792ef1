"""The event record the bus carries (plain data, so the plugin API can hand it out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """``name`` like ``contact.created``; ``payload`` plain data (ids, field values);
    ``source`` the actor or plugin that caused it."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    source: str = "core"
