"""Enumerations of the CRM domain."""

from __future__ import annotations

from enum import StrEnum


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"


class ActivityKind(StrEnum):
    CALL = "call"
    MEETING = "meeting"
    VISIT = "visit"
    TASK = "task"
    NOTE = "note"


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Role(StrEnum):
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
