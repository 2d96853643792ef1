"""Enumerations of the CRM domain."""

from __future__ import annotations

from enum import StrEnum


class LeadStatus(StrEnum):
    """Where a lead stands in qualification.

    ``CONVERTED`` is set only by converting the lead (``services.leads.convert``), which also
    records the contact, company and deal it became; a converted lead keeps that status.
    """

    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONVERTED = "converted"


class ActivityKind(StrEnum):
    """What an activity is: a call, meeting, visit, task or note."""

    CALL = "call"
    MEETING = "meeting"
    VISIT = "visit"
    TASK = "task"
    NOTE = "note"


class DealStatus(StrEnum):
    """Whether a deal is still open, won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Role(StrEnum):
    """A user's role; it limits what the user (and the plugins acting for them) may do."""

    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


class ActorKind(StrEnum):
    """Who made a change, as written to the audit log."""

    USER = "user"
    PLUGIN = "plugin"
    AGENT = "agent"
    SYSTEM = "system"
    SYNC = "sync"


class EntityName(StrEnum):
    """The synced entities, named as in events, audit entries and the sync protocol."""

    COMPANY = "company"
    CONTACT = "contact"
    LEAD = "lead"
    DEAL = "deal"
    ACTIVITY = "activity"
    PIPELINE = "pipeline"
    STAGE = "stage"
    TAG = "tag"
    USER = "user"
