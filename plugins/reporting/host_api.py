"""Every call the reporting plugin makes to the app, in one place.

All of it is read-only: aggregates through ``ctx.<records>.aggregate`` (``deals:read``,
``leads:read``, ``activities:read``), the users (``users:read``) for the names of the reps and
their teams, and the desktop window (``ctx.ui``): loading in the background and saving exports
to a file the user picks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

#: the record collections the charts aggregate, by the name the dashboard uses
RESOURCES: dict[str, Callable[[Any], Any]] = {
    "deals": lambda ctx: ctx.deals,
    "leads": lambda ctx: ctx.leads,
    "activities": lambda ctx: ctx.activities,
}


def aggregate(ctx: Any, resource: str, group_by: list[str] | tuple[str, ...], measures: dict[str, str],
              **filters: Any) -> list[dict[str, Any]]:
    """``ctx.<resource>.aggregate(...)``: grouped measures computed by the host in SQL."""
    try:
        records = RESOURCES[resource](ctx)
    except KeyError:
        raise ValueError(f"unknown resource {resource!r} (one of {', '.join(RESOURCES)})") from None
    return records.aggregate(group_by=list(group_by), measures=measures, **filters)


def users(ctx: Any) -> list[Any]:
    """Every user the app knows (id, display_name, username, team_id), page by page."""
    return list(ctx.users.iter_all())


def run_in_background(ctx: Any, fn: Callable[[], Any], on_done: Callable[[Any], object],
                      on_error: Callable[[BaseException], object]) -> None:
    """``ctx.ui.run_in_background``: ``fn()`` on a worker thread, the callbacks on the GUI thread."""
    ctx.ui.run_in_background(fn, on_done=on_done, on_error=on_error)


def save_file(ctx: Any, title: str, suggested_name: str, filters: Sequence[str],
              write: Callable[[BinaryIO], object]) -> Path | None:
    """``ctx.ui.save_file``: the user picks the file, the host writes it atomically (None: not saved)."""
    return ctx.ui.save_file(title, suggested_name, list(filters), write)
