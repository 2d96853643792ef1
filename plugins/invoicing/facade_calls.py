"""Every call this plugin makes to the app's facade (``ctx``) beyond its own tables, in one place.

The plugin API grows this release (docs: api-contract). Calls whose names may still move
(``ctx.ui``, paging) go through here, so adapting to the final names is a change in this file.
"""

from __future__ import annotations

from typing import Any, Callable

from crm_desktop.plugin_api import NotConfigured, NotFound


def get_deal(ctx, deal_id: str):
    return ctx.deals.get(deal_id)


def get_company(ctx, company_id: str | None):
    if not company_id:
        return None
    try:
        return ctx.companies.get(company_id)
    except NotFound:
        return None


def get_contact(ctx, contact_id: str | None):
    if not contact_id:
        return None
    try:
        return ctx.contacts.get(contact_id)
    except NotFound:
        return None


def companies(ctx, limit: int = 500) -> list:
    return list(ctx.companies.list(limit=limit, sort="name"))


def contacts_of(ctx, company_id: str | None, limit: int = 500) -> list:
    if company_id:
        return list(ctx.contacts.list(limit=limit, company_id=company_id))
    return list(ctx.contacts.list(limit=limit))


def _ui(ctx) -> Any | None:
    try:
        return getattr(ctx, "ui", None)
    except NotConfigured:
        return None


def confirm(ctx, title: str, text: str, fallback: Callable[[str, str], bool] | None = None) -> bool:
    """Ask the user (``ctx.ui.confirm``); without a UI facade, ``fallback`` decides (default: no)."""
    ui = _ui(ctx)
    if ui is not None and hasattr(ui, "confirm"):
        return bool(ui.confirm(title, text))
    return bool(fallback(title, text)) if fallback is not None else False


def show_status(ctx, message: str) -> None:
    ui = _ui(ctx)
    if ui is not None and hasattr(ui, "show_status"):
        ui.show_status(message)
    else:
        ctx.log.info("%s", message)
