"""Contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.validation import (
    check_email,
    check_phone,
    clean_text,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.storage import models


def contact_name_key(first: str | None, last: str | None) -> str | None:
    """Sort and duplicate key: last name first, as address books sort."""
    return normalize_name(last, first)


class ContactService(EntityService[models.Contact, records.Contact]):
    entity = "contact"
    model = models.Contact
    record_type = records.Contact
    writable = ("first_name", "last_name", "email", "phone", "mobile", "job_title", "company_id",
                "street", "city", "postal_code", "country", "notes", "tags", "owner_id", "team_id")
    sort_keys = {"name": "name_key", "updated": "updated_at", "created": "created_at", "email": "email_key"}
    fts_table = "contacts_fts"
    has_tags = True

    def clean(self, session: Session, fields: dict[str, Any], row) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        for name, limit in (("first_name", 100), ("last_name", 100), ("job_title", 150), ("street", 300),
                            ("city", 100), ("postal_code", 20), ("country", 100), ("notes", 100_000),
                            ("owner_id", 36), ("team_id", 36)):
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        first = out["first_name"] if "first_name" in out else row.first_name
        last = out["last_name"] if "last_name" in out else row.last_name
        if not first and not last:
            raise ValidationError("last_name", fields.get("last_name"), "a first or last name is required", e)
        if "first_name" in out or "last_name" in out:
            out["name_key"] = contact_name_key(first, last)
        if "email" in fields or row is None:
            out["email"] = check_email(fields.get("email"), "email", e)
            out["email_key"] = normalize_email(out["email"])
        for name in ("phone", "mobile"):
            if name in fields or row is None:
                out[name] = check_phone(fields.get(name), name, e)
                out[f"{name}_key"] = normalize_phone(out[name], self._services.phone_region)
        if "company_id" in fields:
            company_id = fields["company_id"] or None
            if company_id is not None:
                company = session.get(models.Company, company_id)
                if company is None or company.deleted_at is not None:
                    raise ValidationError("company_id", company_id, "must be the id of an existing company", e)
            out["company_id"] = company_id
        if "tags" in fields:
            out["tags"] = fields["tags"]
        return out

    def sql_extras(self) -> dict[str, Any]:
        return {"company_name": select(models.Company.name).where(
            models.Company.id == models.Contact.company_id, models.Company.deleted_at.is_(None)).scalar_subquery()}

    def extra_record_values(self, row: models.Contact) -> dict[str, Any]:
        company = row.company
        return {"company_name": company.name if company is not None and company.deleted_at is None else None}
