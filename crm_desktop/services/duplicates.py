"""Duplicate detection for contacts.

Two contacts look like the same person when they share an e-mail address, a
phone number (phone or mobile, compared in E.164 form by ``phonenumbers`` so that
``+49 30 1234567`` and ``030 1234567`` meet in a German address book, while the same
digits in different countries do not; see :mod:`crm_desktop.domain.phones`), or the same normalised name at
the same company. Every comparison reads one of the indexed key columns
(``email_key``, ``phone_key``, ``mobile_key``, ``company_id`` + ``name_key``),
so the check before saving costs a few index lookups, whatever the size of
the address book.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, text

from crm_desktop.domain.validation import normalize_email, normalize_phone
from crm_desktop.services.contacts import contact_name_key
from crm_desktop.storage import models

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

SAME_EMAIL = "same e-mail"
SAME_PHONE = "same phone"
SAME_NAME_AT_COMPANY = "same name at the same company"
#: strongest evidence first: the order matches are listed in
REASON_ORDER = (SAME_EMAIL, SAME_PHONE, SAME_NAME_AT_COMPANY)


@dataclass(frozen=True)
class DuplicateMatch:
    """An existing contact that looks like the one being saved.

    ``reason`` is the strongest reason (e.g. "same e-mail"); ``reasons`` all of them.
    """

    contact_id: str
    reason: str
    reasons: tuple[str, ...] = ()
    display_name: str = ""


@dataclass(frozen=True)
class DuplicateGroup:
    """Contacts that look like one person (for a "review duplicates" list), oldest first."""

    contact_ids: tuple[str, ...]
    reasons: tuple[str, ...]


class DuplicateFinder:
    """``services.duplicates``: "this looks like an existing contact" before saving, and a review list."""

    def __init__(self, services: "CrmServices"):
        self._services = services

    def contacts_like(self, *, first_name: str | None = None, last_name: str | None = None,
                      email: str | None = None, phone: str | None = None, mobile: str | None = None,
                      company_id: str | None = None, exclude_id: str | None = None,
                      limit: int = 20) -> list[DuplicateMatch]:
        """Live contacts that look like a contact with these fields, strongest match first.

        Pass ``exclude_id`` when editing a contact, so it does not match itself.
        Values are compared normalised; a value that is not valid (a half-typed
        e-mail) simply matches nothing.
        """
        c = models.Contact
        email_key = normalize_email(email) if isinstance(email, str) else None
        region = self._services.phone_region
        phone_keys = {k for k in (normalize_phone(p, region) for p in (phone, mobile) if isinstance(p, str)) if k}
        name_key = contact_name_key(first_name, last_name) if company_id else None
        conditions = []
        if email_key:
            conditions.append(c.email_key == email_key)
        if phone_keys:
            conditions.extend([c.phone_key.in_(phone_keys), c.mobile_key.in_(phone_keys)])
        if name_key:
            conditions.append((c.company_id == company_id) & (c.name_key == name_key))
        if not conditions:
            return []
        stmt = (select(c.id, c.first_name, c.last_name, c.email_key, c.phone_key, c.mobile_key,
                       c.company_id, c.name_key)
                .where(or_(*conditions), c.deleted_at.is_(None)))
        if exclude_id:
            stmt = stmt.where(c.id != exclude_id)
        with self._services.db.read_sessions() as session:
            rows = session.execute(stmt.order_by(c.created_at, c.id).limit(max(1, limit) * 3)).all()
        matches = []
        for row in rows:
            reasons = []
            if email_key and row.email_key == email_key:
                reasons.append(SAME_EMAIL)
            if phone_keys & {row.phone_key, row.mobile_key}:
                reasons.append(SAME_PHONE)
            if name_key and row.company_id == company_id and row.name_key == name_key:
                reasons.append(SAME_NAME_AT_COMPANY)
            if reasons:
                name = " ".join(p for p in (row.first_name, row.last_name) if p)
                matches.append(DuplicateMatch(row.id, reasons[0], tuple(reasons), name))
        matches.sort(key=lambda m: (REASON_ORDER.index(m.reason), -len(m.reasons)))
        return matches[:limit]

    def find_duplicate_groups(self, limit: int = 100) -> list[DuplicateGroup]:
        """Groups of live contacts that look like one person, for a "review duplicates" list.

        Contacts linked by any reason end up in one group (A shares an e-mail
        with B, B a phone with C: one group of three). Groups come largest
        first, then by their oldest contact.
        """
        queries = (
            (SAME_EMAIL, "SELECT email_key, id FROM contacts WHERE deleted_at IS NULL AND email_key IN "
                         "(SELECT email_key FROM contacts WHERE deleted_at IS NULL AND email_key IS NOT NULL "
                         "GROUP BY email_key HAVING count(*) > 1)"),
            (SAME_PHONE, "WITH k(key, id) AS (SELECT phone_key, id FROM contacts WHERE deleted_at IS NULL "
                         "AND phone_key IS NOT NULL UNION SELECT mobile_key, id FROM contacts "
                         "WHERE deleted_at IS NULL AND mobile_key IS NOT NULL) "
                         "SELECT key, id FROM k WHERE key IN "
                         "(SELECT key FROM k GROUP BY key HAVING count(DISTINCT id) > 1)"),
            (SAME_NAME_AT_COMPANY,
             "SELECT company_id || '/' || name_key, id FROM contacts WHERE deleted_at IS NULL AND "
             "(company_id, name_key) IN (SELECT company_id, name_key FROM contacts WHERE deleted_at IS NULL "
             "AND company_id IS NOT NULL AND name_key IS NOT NULL GROUP BY company_id, name_key "
             "HAVING count(*) > 1)"),
        )
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        reasons_of: dict[str, set[str]] = {}
        with self._services.db.read_engine.connect() as conn:
            for reason, sql in queries:
                first_of_key: dict[str, str] = {}
                for key, contact_id in conn.execute(text(sql)):
                    reasons_of.setdefault(contact_id, set()).add(reason)
                    if key in first_of_key:
                        a, b = find(first_of_key[key]), find(contact_id)
                        if a != b:
                            parent[b] = a
                    else:
                        first_of_key[key] = contact_id
                        find(contact_id)
        groups: dict[str, list[str]] = {}
        for contact_id in parent:
            groups.setdefault(find(contact_id), []).append(contact_id)
        result = []
        for members in groups.values():
            if len(members) < 2:
                continue
            members.sort()  # UUIDv7 ids sort by creation: oldest first
            reasons = set().union(*(reasons_of[m] for m in members))
            result.append(DuplicateGroup(tuple(members), tuple(r for r in REASON_ORDER if r in reasons)))
        result.sort(key=lambda g: (-len(g.contact_ids), g.contact_ids[0]))
        return result[:max(0, limit)]
