"""Every call this plugin makes to the app's facade (``ctx``) beyond its own tables, in one place.

Reads of core records (``deals:read``, ``companies:read``, ``contacts:read``) and the desktop
window (``ctx.ui``: status messages, the won-deal question, saving a PDF where the user picks).
On the command line there is no window (``ctx.ui`` raises :class:`NotConfigured`): messages go
to the plugin's log and questions are answered "no".
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable

from crm_desktop.plugin_api import MAX_LIMIT, NotConfigured, NotFound

#: contacts the editor lists when no company is chosen; with more, it asks for a company first
MAX_UNFILTERED_CONTACTS = 2000


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


def companies(ctx) -> list:
    """Every company, by name (page after page: none is left out)."""
    out: list = []
    cursor = None
    while True:
        page = ctx.companies.list(limit=MAX_LIMIT, sort="name", cursor=cursor)
        out.extend(page)
        if not page.has_more:
            return out
        cursor = page.next_cursor


def contacts_of(ctx, company_id: str | None) -> list | None:
    """The contacts of a company (all of them), by name; with no company, every contact when there
    are at most :data:`MAX_UNFILTERED_CONTACTS`, else None (the editor then asks for a company)."""
    if company_id:
        found = list(ctx.contacts.iter_all(company_id=company_id))
    elif ctx.contacts.count() > MAX_UNFILTERED_CONTACTS:
        return None
    else:
        found = list(ctx.contacts.iter_all())
    return sorted(found, key=lambda c: c.display_name.casefold())


def confirm(ctx, title: str, text: str) -> bool:
    """Ask the user (``ctx.ui.confirm``, GUI thread); without a window the answer is no."""
    try:
        ui = ctx.ui
    except NotConfigured:
        ctx.log.info("%s: %s (no window to ask: not done)", title, text)
        return False
    return bool(ui.confirm(title, text))


def show_status(ctx, message: str) -> None:
    """A status bar message; without a window, a log line."""
    try:
        ctx.ui.show_status(message)
    except NotConfigured:
        ctx.log.info("%s", message)


def save_file(ctx, title: str, suggested_name: str, filters: list[str],
              write: Callable[[BinaryIO], object]) -> Path | None:
    """``ctx.ui.save_file``: the user picks the file, the host writes it atomically (None: not saved)."""
    return ctx.ui.save_file(title, suggested_name, filters, write)
