"""Every call the reporting plugin makes to the app, in one place.

The rest of the plugin asks this module, never ``ctx`` directly, so a change in the plugin
API is a change here only. All of it is read-only: aggregates through
``ctx.<records>.aggregate`` (``deals:read``, ``leads:read``, ``activities:read``) and the user
list (``users:read``) for the names of the reps.
"""

from __future__ import annotations

from typing import Any, Callable

from crm_desktop.plugin_api import NotConfigured

#: the most users the owner filter lists (one page of ``ctx.users.list``)
MAX_USERS = 1000


def aggregate(ctx: Any, resource: str, group_by: list[str] | tuple[str, ...], measures: dict[str, str],
              **filters: Any) -> list[dict[str, Any]]:
    """``ctx.<resource>.aggregate(...)``: grouped measures computed by the host in SQL."""
    return getattr(ctx, resource).aggregate(group_by=list(group_by), measures=measures, **filters)


def users(ctx: Any) -> list[Any]:
    """The users the app knows (id, display_name, team_id), for the owner and team filters."""
    return list(ctx.users.list(limit=MAX_USERS))


def background_runner(ctx: Any) -> Callable[..., Any] | None:
    """The host's ``ctx.ui.run_in_background(fn, on_done=, on_error=)``, or None where the app has none.

    None on a command line or a headless host (``ctx.ui`` raises :class:`NotConfigured`) and on
    hosts older than the UI facade; the panel then runs the work on a thread pool of its own.
    """
    try:
        ui = ctx.ui
        return ui.run_in_background
    except (AttributeError, NotConfigured):
        return None
