"""The record types plugins get back from ``ctx.contacts``, ``ctx.deals``, ... and events.

Plain frozen dataclasses (snapshots: changing one changes nothing; call the facade's
``update``). They are defined in :mod:`crm_desktop.domain` (no Qt, no SQLAlchemy) and
re-exported here so a plugin imports them from the public API only.
"""

from __future__ import annotations

from crm_desktop.domain.enums import ActivityKind, DealStatus, LeadStatus, Role
from crm_desktop.domain.events import Event
from crm_desktop.domain.records import (
    Activity, Company, Contact, Deal, Lead, Pipeline, Stage, SyncedRecord, Tag, User,
)

__all__ = [
    "Activity", "ActivityKind", "Company", "Contact", "Deal", "DealStatus", "Event", "Lead", "LeadStatus",
    "Pipeline", "Role", "Stage", "SyncedRecord", "Tag", "User",
]
