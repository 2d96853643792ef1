"""Converting a qualified lead into a contact, a company and (optionally) a deal.

One unit of work does it all, so a failure anywhere leaves the lead as it
was: the company is reused when one with the same normalised name exists
(or the caller names one), the contact is created from the lead's person
(or the caller names an existing one), the deal is opened in the default
pipeline, the lead's activities are linked to the new records, and the lead's
status becomes ``converted`` (:attr:`LeadStatus.CONVERTED`) with the ids it became. Event: ``lead.converted``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_desktop.domain import records
from crm_desktop.domain.enums import LeadStatus
from crm_desktop.domain.validation import normalize_name
from crm_desktop.errors import ValidationError
from crm_desktop.storage import models
from crm_desktop.storage.base import utcnow

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

AUDIT_ACTION = "convert"


@dataclass(frozen=True)
class ConversionResult:
    """What a lead became. ``company_created`` is False when an existing company was reused."""

    lead: records.Lead
    contact_id: str | None
    company_id: str | None
    deal_id: str | None
    company_created: bool
    moved_activities: int


def convert_lead(services: "CrmServices", lead_id: str, *, create_deal: bool = True,
                 deal_title: str | None = None, amount: Any = None, company_id: str | None = None,
                 contact_id: str | None = None) -> ConversionResult:
    """Convert lead ``lead_id`` (see the module docs); refused if it was converted already."""
    e = "lead"
    with services.unit_of_work() as uow:
        session = uow.session
        lead = services.leads.live_row(session, lead_id)
        if lead.converted_at is not None:
            raise ValidationError("lead_id", lead_id,
                                  f"lead {lead.title!r} was converted already on {lead.converted_at:%Y-%m-%d %H:%M} UTC",
                                  e)
        # -- company: the one named, else an existing one of the same name, else a new one
        company_created = False
        if company_id:
            company = session.get(models.Company, company_id)
            if company is None or company.deleted_at is not None:
                raise ValidationError("company_id", company_id, "must be the id of an existing company", e)
        elif lead.company_name:
            key = normalize_name(lead.company_name)
            company_id = session.scalars(
                select(models.Company.id)
                .where(models.Company.name_key == key, models.Company.deleted_at.is_(None))
                .order_by(models.Company.created_at, models.Company.id)
            ).first()
            if company_id is None:
                company = services.companies.create_in(uow, {
                    "name": lead.company_name, "owner_id": lead.owner_id, "team_id": lead.team_id})
                company_id, company_created = company.id, True
        # -- contact: the one named, else one made from the lead's person
        if contact_id:
            contact = session.get(models.Contact, contact_id)
            if contact is None or contact.deleted_at is not None:
                raise ValidationError("contact_id", contact_id, "must be the id of an existing contact", e)
        elif lead.first_name or lead.last_name:
            contact = services.contacts.create_in(uow, {
                "first_name": lead.first_name, "last_name": lead.last_name, "email": lead.email,
                "phone": lead.phone, "company_id": company_id, "owner_id": lead.owner_id,
                "team_id": lead.team_id, "tags": [t.name for t in lead.tags],
            })
            contact_id = contact.id
        # -- deal
        deal_id = None
        if create_deal:
            deal = services.deals.create_in(uow, {
                "title": deal_title if deal_title is not None else lead.title, "amount": amount,
                "company_id": company_id, "contact_id": contact_id, "owner_id": lead.owner_id,
                "team_id": lead.team_id, "tags": [t.name for t in lead.tags],
            })
            deal_id = deal.id
        with uow.audited_as(AUDIT_ACTION):
            # -- the lead's activities follow it to what it became (where they point nowhere yet)
            moved = 0
            for activity in session.scalars(select(models.Activity).where(
                    models.Activity.lead_id == lead.id, models.Activity.deleted_at.is_(None))).all():
                changed: dict[str, tuple[Any, Any]] = {}
                for column, value in (("contact_id", contact_id), ("company_id", company_id), ("deal_id", deal_id)):
                    if value is not None and getattr(activity, column) is None:
                        changed[column] = (None, value)
                        setattr(activity, column, value)
                if changed:
                    uow.publish_after_commit("activity.updated", {"id": activity.id, "fields": sorted(changed)})
                    moved += 1
            # -- the lead itself
            changed = {}
            lead_values: tuple[tuple[str, object], ...] = (
                ("status", LeadStatus.CONVERTED.value), ("converted_at", utcnow()),
                ("converted_contact_id", contact_id), ("converted_company_id", company_id),
                ("converted_deal_id", deal_id))
            for column, new in lead_values:
                old = getattr(lead, column)
                if old != new:
                    changed[column] = (old, new)
                    setattr(lead, column, new)
        if "status" in changed:
            uow.publish_after_commit("lead.status_changed", {"id": lead.id, "old": changed["status"][0],
                                                              "new": changed["status"][1]})
        uow.publish_after_commit("lead.converted", {
            "id": lead.id, "contact_id": contact_id, "company_id": company_id, "deal_id": deal_id,
            "company_created": company_created,
        })
        session.refresh(lead)
        record = services.leads.to_record(lead)
    log.info("converted lead %s: contact %s, company %s, deal %s", lead_id, contact_id, company_id, deal_id)
    return ConversionResult(record, contact_id, company_id, deal_id, company_created, moved)
