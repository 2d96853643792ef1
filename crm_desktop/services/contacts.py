"""Contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import text_limits
from crm_desktop.domain.validation import (
    check_email,
    check_emails,
    check_phone,
    check_phone_column,
    clean_text,
    clean_texts,
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


_TEXT_LIMITS = text_limits("contact")
_COLUMN_FIELDS = frozenset(name for name, _ in _TEXT_LIMITS) | {"email", "phone", "mobile"}


class ContactService(EntityService[models.Contact, records.Contact]):
    entity = "contact"
    model = models.Contact
    record_type = records.Contact
    writable = ("first_name", "last_name", "email", "phone", "mobile", "job_title", "company_id",
                "street", "city", "postal_code", "country", "notes", "tags", "owner_id", "team_id")
    sort_keys = {"name": "name_key", "updated": "updated_at", "created": "created_at", "email": "email_key"}
    fts_table = "contacts_fts"
    has_tags = True

    def clean(self, session: Session, fields: dict[str, Any], row: models.Contact | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        for name, limit in _TEXT_LIMITS:
            if name in fields or row is None:
                out[name] = clean_text(fields.get(name), name, entity=e, max_len=limit)
        # a new contact (no row) has every text field in ``out``
        first = out["first_name"] if "first_name" in out or row is None else row.first_name
        last = out["last_name"] if "last_name" in out or row is None else row.last_name
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

    def clean_columns(self, session: Session, columns: dict[str, list[Any]],
                      count: int) -> tuple[dict[str, list[Any]], dict[int, str]]:
        """:meth:`clean` of new contacts, column by column (see the base class): the same values,
        and for a contact that breaks a rule the message :meth:`clean` gives."""
        if not set(columns) <= _COLUMN_FIELDS:
            return super().clean_columns(session, columns, count)
        e = self.entity
        empty = [None] * count
        out: dict[str, list[Any]] = {}
        suspects: set[int] = set()
        for name, limit in _TEXT_LIMITS:
            if name in columns:
                out[name], bad = clean_texts(columns[name], limit, name)
                suspects.update(bad)
            else:
                out[name] = empty
        first, last = out["first_name"], out["last_name"]
        if None in first and None in last:  # (a column without a missing value: every row has that name)
            suspects.update(i for i, (f, l) in enumerate(zip(first, last)) if not f and not l)
        out["name_key"] = list(map(normalize_name, last, first))  # contact_name_key, one call less a row
        out["email"], bad = check_emails(columns.get("email", empty), "email", e)
        suspects.update(bad)
        out["email_key"] = [v.lower() if v else None for v in out["email"]]
        region = self._services.phone_region
        for name in ("phone", "mobile"):
            out[name], out[f"{name}_key"], bad = check_phone_column(columns.get(name, empty), name, e, region)
            suspects.update(bad)
        if not suspects:
            return out, {}
        out = {name: list(values) for name, values in out.items()}  # ``empty`` may be shared
        return out, self._recheck(session, columns, out, suspects)

    def sql_extras(self) -> dict[str, Any]:
        return {"company_name": select(models.Company.name).where(
            models.Company.id == models.Contact.company_id, models.Company.deleted_at.is_(None)).scalar_subquery()}

    def extra_record_values(self, row: models.Contact) -> dict[str, Any]:
        company = row.company
        return {"company_name": company.name if company is not None and company.deleted_at is None else None}
