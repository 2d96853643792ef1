"""Plain records handed from services to the UI, the CLI and plugins.

They are snapshots: changing one changes nothing in the database; call the
service's ``update`` for that. Field names match the storage columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from decimal import Decimal

from crm_desktop.domain.enums import ActivityKind, DealStatus, LeadStatus, Role


@dataclass(frozen=True)
class SyncedRecord:
    id: str
    created_at: datetime
    updated_at: datetime
    version: int
    deleted_at: datetime | None
    owner_id: str | None
    team_id: str | None


@dataclass(frozen=True)
class Company(SyncedRecord):
    name: str
    website: str | None = None
    industry: str | None = None
    email: str | None = None
    phone: str | None = None
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class Contact(SyncedRecord):
    first_name: str | None
    last_name: str | None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    job_title: str | None = None
    company_id: str | None = None
    company_name: str | None = None
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class Lead(SyncedRecord):
    title: str
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    status: LeadStatus = LeadStatus.NEW
    source: str | None = None
    notes: str | None = None
    converted_at: datetime | None = None
    converted_contact_id: str | None = None
    converted_company_id: str | None = None
    converted_deal_id: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.title


@dataclass(frozen=True)
class Pipeline(SyncedRecord):
    name: str
    position: int = 0
    is_default: bool = False


@dataclass(frozen=True)
class Stage(SyncedRecord):
    pipeline_id: str
    name: str
    position: int = 0
    probability: int = 0
    is_won: bool = False
    is_lost: bool = False


@dataclass(frozen=True)
class Deal(SyncedRecord):
    title: str
    pipeline_id: str
    stage_id: str
    amount_cents: int = 0
    currency: str = "EUR"
    status: DealStatus = DealStatus.OPEN
    company_id: str | None = None
    contact_id: str | None = None
    expected_close: date | None = None
    stage_changed_at: datetime | None = None
    notes: str | None = None
    company_name: str | None = None
    stage_name: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_cents) / 100

    @property
    def display_name(self) -> str:
        return self.title


@dataclass(frozen=True)
class Activity(SyncedRecord):
    kind: ActivityKind
    subject: str
    body: str | None = None
    due_at: datetime | None = None
    done_at: datetime | None = None
    location: str | None = None
    contact_id: str | None = None
    company_id: str | None = None
    deal_id: str | None = None
    lead_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.subject

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


@dataclass(frozen=True)
class Tag(SyncedRecord):
    name: str
    color: str | None = None


@dataclass(frozen=True)
class User(SyncedRecord):
    username: str
    display_name: str
    email: str | None = None
    role: Role = Role.REP


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_kind: str
    actor_name: str
    action: str
    entity: str | None
    record_id: str | None
    changes: dict[str, Any] = field(default_factory=dict)
    #: the user an ``agent`` actor acted for
    on_behalf_of: str | None = None
