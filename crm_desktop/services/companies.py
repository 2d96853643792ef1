"""Companies."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len, text_limits
from crm_desktop.domain.validation import check_email, check_phone, check_url, clean_text, normalize_name
from crm_desktop.services.entity import EntityService
from crm_desktop.storage import models


class CompanyService(EntityService[models.Company, records.Company]):
    entity = "company"
    model = models.Company
    record_type = records.Company
    writable = ("name", "website", "industry", "email", "phone", "street", "city", "postal_code",
                "country", "notes", "tags", "owner_id", "team_id")
    sort_keys = {"name": "name_key", "updated": "updated_at", "created": "created_at", "city": "city"}
    fts_table = "companies_fts"
    has_tags = True

    def clean(self, session: Session, fields: dict[str, Any], row: models.Company | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "name" in fields:
            out["name"] = clean_text(fields.get("name"), "name", entity=e, max_len=max_len(e, "name"), required=True)
            out["name_key"] = normalize_name(out["name"])
        for name, limit in text_limits(e):
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        if "website" in fields or row is None:
            out["website"] = check_url(fields.get("website"), "website", e)
        if "email" in fields or row is None:
            out["email"] = check_email(fields.get("email"), "email", e)
        if "phone" in fields or row is None:
            out["phone"] = check_phone(fields.get("phone"), "phone", e)
        if "tags" in fields:
            out["tags"] = fields["tags"]
        return out
