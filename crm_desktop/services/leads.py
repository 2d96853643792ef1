"""Leads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len, text_limits
from crm_desktop.domain.enums import LeadStatus
from crm_desktop.domain.validation import check_choice, check_email, check_phone, clean_text
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.storage import models

if TYPE_CHECKING:
    from crm_desktop.services.lead_conversion import ConversionResult


class LeadService(EntityService[models.Lead, records.Lead]):
    entity = "lead"
    model = models.Lead
    record_type = records.Lead
    writable = ("title", "first_name", "last_name", "company_name", "email", "phone", "status",
                "source", "notes", "tags", "owner_id", "team_id")
    sort_keys = {"title": "title", "updated": "updated_at", "created": "created_at", "status": "status"}
    enum_fields = {"status": LeadStatus}
    fts_table = "leads_fts"
    has_tags = True

    def clean(self, session: Session, fields: dict[str, Any], row: models.Lead | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "title" in fields:
            out["title"] = clean_text(fields.get("title"), "title", entity=e, max_len=max_len(e, "title"), required=True)
        for name, limit in text_limits(e):
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        if "email" in fields or row is None:
            out["email"] = check_email(fields.get("email"), "email", e)
        if "phone" in fields or row is None:
            out["phone"] = check_phone(fields.get("phone"), "phone", e)
        if "status" in fields or row is None:
            status = check_choice(fields.get("status"), LeadStatus, "status", e, LeadStatus.NEW)
            was = row.status if row is not None else None
            if status is LeadStatus.CONVERTED and was != LeadStatus.CONVERTED.value:
                raise ValidationError("status", status.value,
                                      "is set by converting the lead (Convert), which creates its contact, "
                                      "company and deal", e)
            if was == LeadStatus.CONVERTED.value and status is not LeadStatus.CONVERTED:
                raise ValidationError("status", status.value,
                                      "cannot be changed: the lead was converted already", e)
            out["status"] = status.value
        if "tags" in fields:
            out["tags"] = fields["tags"]
        return out

    def after_update(self, uow: UnitOfWork, row: models.Lead, changed: dict[str, tuple[Any, Any]]) -> None:
        super().after_update(uow, row, changed)
        if "status" in changed:
            uow.publish_after_commit("lead.status_changed", {"id": row.id, "old": changed["status"][0],
                                                              "new": changed["status"][1]})

    def convert(self, lead_id: str, create_deal: bool = True, deal_title: str | None = None, amount: Any = None,
                company_id: str | None = None, contact_id: str | None = None) -> ConversionResult:
        """Turn the lead into a contact, a company and a deal in one transaction.

        See :mod:`crm_desktop.services.lead_conversion`; returns its ``ConversionResult``.
        """
        from crm_desktop.services.lead_conversion import convert_lead

        return convert_lead(self._services, lead_id, create_deal=create_deal, deal_title=deal_title,
                            amount=amount, company_id=company_id, contact_id=contact_id)
