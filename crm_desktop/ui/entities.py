"""What each entity looks like in the UI: list columns, filters, form fields, labels.

Views and forms are generic; this module is the one place that knows contacts have a
company and deals have an amount. Values are always read from the plain records the
services return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from crm_desktop.domain import record_fields
from crm_desktop.domain.enums import ActivityKind, LeadStatus
from crm_desktop.ui.paged_model import Column


def money(cents: int | None, currency: str = "EUR") -> str:
    """12345600 -> '123,456 EUR' (whole units: lists and boards show sizes, not cents)."""
    if cents is None:
        return ""
    return f"{cents / 100:,.0f} {currency}".replace(",", "\u2009")


def when(value: datetime | date | None) -> str:
    """A short local date (and time, when there is one)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        local = value.astimezone() if value.tzinfo else value
        return local.strftime("%d %b %Y %H:%M") if (local.hour or local.minute) else local.strftime("%d %b %Y")
    return value.strftime("%d %b %Y")


def tags_text(tags) -> str:
    return ", ".join(tags or ())


@dataclass(frozen=True)
class FormField:
    """One input of a detail form. ``kind``: text, multiline, choice, company, contact, stage,
    amount, date, datetime, tags. ``service_field`` is what the service calls it, if different."""

    name: str
    label: str
    kind: str = "text"
    choices: tuple[str, ...] = ()
    required: bool = False
    placeholder: str = ""


@dataclass(frozen=True)
class EntitySpec:
    """The UI description of one entity."""

    entity: str           # service entity name: contact, company, ...
    plural: str           # the service attribute and page key: contacts, companies, ...
    title: str            # sidebar and page title
    singular: str         # "Contact"
    icon: str
    columns: tuple[Column, ...]
    form: tuple[FormField, ...]
    #: filter controls offered above the list: text is always there
    filters: tuple[str, ...] = ("tag", "owner")
    status_choices: tuple[str, ...] = ()
    related: tuple[str, ...] = field(default_factory=tuple)


def _field(entity: str, name: str, kind: str = "text", choices: tuple[str, ...] = (), *,
           placeholder: str = "", required: bool | None = None) -> FormField:
    """A form input for field ``name`` of ``entity``, labelled and marked required as the field
    table (:mod:`crm_desktop.domain.record_fields`) says (``required`` overrides the mark where
    the service fills the value in itself)."""
    spec = record_fields.field_spec(entity, name)
    return FormField(name, spec.label, kind, choices, spec.required if required is None else required, placeholder)


def _name(c) -> str:
    return c.display_name or "(no name)"


SPECS: dict[str, EntitySpec] = {
    "contacts": EntitySpec(
        "contact", "contacts", "Contacts", "Contact", "contacts",
        columns=(
            Column("Name", _name, "name", 210),
            Column("Company", lambda c: c.company_name, None, 190),
            Column("Job title", lambda c: c.job_title, None, 160),
            Column("Email", lambda c: c.email, "email", 230),
            Column("Phone", lambda c: c.phone or c.mobile, None, 140),
            Column("City", lambda c: c.city, None, 110),
            Column("Tags", lambda c: tags_text(c.tags), None, 140),
            Column("Updated", lambda c: when(c.updated_at), "updated", 130),
        ),
        form=(
            _field("contact", "first_name"), _field("contact", "last_name"),
            _field("contact", "company_id", "company"), _field("contact", "job_title"),
            _field("contact", "email", placeholder="name@example.com"), _field("contact", "phone"),
            _field("contact", "mobile"), _field("contact", "city"), _field("contact", "country"),
            _field("contact", "tags", "tags", placeholder="comma separated"),
            _field("contact", "notes", "multiline"),
        ),
        related=("activities", "deals"),
    ),
    "companies": EntitySpec(
        "company", "companies", "Companies", "Company", "companies",
        columns=(
            Column("Name", lambda c: c.name, "name", 240),
            Column("Industry", lambda c: c.industry, None, 150),
            Column("City", lambda c: c.city, "city", 130),
            Column("Country", lambda c: c.country, None, 110),
            Column("Website", lambda c: c.website, None, 190),
            Column("Phone", lambda c: c.phone, None, 140),
            Column("Tags", lambda c: tags_text(c.tags), None, 140),
            Column("Updated", lambda c: when(c.updated_at), "updated", 130),
        ),
        form=(
            _field("company", "name"), _field("company", "industry"),
            _field("company", "website", placeholder="example.com"), _field("company", "email"),
            _field("company", "phone"), _field("company", "street"), _field("company", "city"),
            _field("company", "postal_code"), _field("company", "country"),
            _field("company", "tags", "tags", placeholder="comma separated"),
            _field("company", "notes", "multiline"),
        ),
        related=("contacts", "deals", "activities"),
    ),
    "leads": EntitySpec(
        "lead", "leads", "Leads", "Lead", "leads",
        columns=(
            Column("Title", lambda r: r.title, "title", 240),
            Column("Name", lambda r: " ".join(p for p in (r.first_name, r.last_name) if p), None, 170),
            Column("Company", lambda r: r.company_name, None, 180),
            Column("Status", lambda r: lead_status_text(r), "status", 110),
            Column("Source", lambda r: r.source, None, 110),
            Column("Email", lambda r: r.email, None, 200),
            Column("Updated", lambda r: when(r.updated_at), "updated", 130),
        ),
        form=(
            _field("lead", "title"), _field("lead", "first_name"),
            _field("lead", "last_name"), _field("lead", "company_name"),
            _field("lead", "email"), _field("lead", "phone"),
            _field("lead", "status", "choice", tuple(s.value for s in LeadStatus)),
            _field("lead", "source"), _field("lead", "tags", "tags"),
            _field("lead", "notes", "multiline"),
        ),
        filters=("status", "tag", "owner"),
        status_choices=tuple(s.value for s in LeadStatus),
        related=("activities",),
    ),
    "deals": EntitySpec(
        "deal", "deals", "Deals", "Deal", "deals",
        columns=(
            Column("Title", lambda d: d.title, "title", 250),
            Column("Company", lambda d: d.company_name, None, 180),
            Column("Stage", lambda d: d.stage_name, None, 120),
            Column("Amount", lambda d: money(d.amount_cents, d.currency), "amount", 120, align_right=True),
            Column("Status", lambda d: str(d.status).capitalize(), None, 80),
            Column("Close", lambda d: when(d.expected_close), "close", 110),
            Column("Updated", lambda d: when(d.updated_at), "updated", 130),
        ),
        form=(
            _field("deal", "title"), _field("deal", "stage_id", "stage", required=False),  # default: the first stage
            FormField("amount", "Amount", "amount"), _field("deal", "currency"),
            _field("deal", "company_id", "company"), _field("deal", "contact_id", "contact"),
            _field("deal", "expected_close", "date"), _field("deal", "tags", "tags"),
            _field("deal", "notes", "multiline"),
        ),
        filters=("stage", "tag", "owner"),
        related=("activities",),
    ),
    "activities": EntitySpec(
        "activity", "activities", "Activities", "Activity", "activities",
        columns=(
            Column("Subject", lambda a: a.subject, "subject", 280),
            Column("Kind", lambda a: str(a.kind).capitalize(), None, 90),
            Column("Due", lambda a: when(a.due_at), "due", 158),
            Column("Done", lambda a: when(a.done_at), None, 158),
            Column("Location", lambda a: a.location, None, 150),
            Column("Updated", lambda a: when(a.updated_at), "updated", 130),
        ),
        form=(
            _field("activity", "kind", "choice", tuple(k.value for k in ActivityKind)),
            _field("activity", "subject"), _field("activity", "due_at", "datetime"),
            _field("activity", "location"), _field("activity", "contact_id", "contact"),
            _field("activity", "company_id", "company"), _field("activity", "body", "multiline"),
        ),
        filters=("kind", "owner"),
        status_choices=tuple(k.value for k in ActivityKind),
    ),
}

#: page key -> service entity name and back
ENTITY_OF_PAGE = {key: spec.entity for key, spec in SPECS.items()}
PAGE_OF_ENTITY = {spec.entity: key for key, spec in SPECS.items()}


def lead_status_text(lead) -> str:
    """What a rep reads as a lead's status ("Converted" once it became a contact, company and deal)."""
    return str(getattr(lead.status, "value", lead.status)).capitalize()
