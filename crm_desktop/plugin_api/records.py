"""The record types plugins get back from ``ctx.contacts``, ``ctx.deals``, ... and events.

Plain frozen dataclasses (snapshots: changing one changes nothing; call the facade's
``update``). They are defined in :mod:`crm_desktop.domain` (no Qt, no SQLAlchemy) and
re-exported here so a plugin imports them from the public API only.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_desktop.domain.enums import ActivityKind, DealStatus, LeadStatus, Role
from crm_desktop.domain.events import Event
from crm_desktop.domain.records import (
    Activity, Company, Contact, Deal, Lead, Pipeline, Stage, SyncedRecord, Tag, User,
)

__all__ = [
    "Activity", "ActivityKind", "Company", "Contact", "Conversion", "Deal", "DealStatus", "Event", "Lead",
    "LeadStatus", "Pipeline", "Role", "Stage", "SyncedRecord", "Tag", "User",
]


@dataclass(frozen=True)
class Conversion:
    """What ``ctx.leads.convert`` made of a lead: the lead as it is now (``status`` qualified,
    ``converted_*`` ids set) and the ``contact``, ``company`` and ``deal`` it became (each None
    when it made none: no person on the lead, no company name, ``create_deal=False``).
    ``company_created`` is False when an existing company of the same name was reused."""

    lead: Lead
    contact: Contact | None
    company: Company | None
    deal: Deal | None
    company_created: bool = False
