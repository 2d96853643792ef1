"""The local copy of the server's users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len
from crm_desktop.domain.enums import Role
from crm_desktop.domain.validation import check_choice, check_email, clean_text
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import MAX_PAGE, EntityService
from crm_desktop.storage import models


class UserService(EntityService[models.User, records.User]):
    entity = "user"
    model = models.User
    record_type = records.User
    writable = ("username", "display_name", "email", "role", "team_id")
    sort_keys = {"name": "display_name", "username": "username"}
    enum_fields = {"role": Role}

    def clean(self, session: Session, fields: dict[str, Any], row: models.User | None) -> dict[str, Any]:
        e = self.entity
        out: dict[str, Any] = {}
        if row is None or "username" in fields:
            username = clean_text(fields.get("username"), "username", entity=e, max_len=max_len(e, "username"),
                                  required=True)
            clash = session.scalar(select(models.User.id).where(models.User.username == username))
            if clash is not None and (row is None or clash != row.id):
                raise ValidationError("username", username, "is taken", e)
            out["username"] = username
        if row is None or "display_name" in fields:
            out["display_name"] = (clean_text(fields.get("display_name"), "display_name", entity=e,
                                              max_len=max_len(e, "display_name"))
                                   or out.get("username") or (row.username if row is not None else None))
        if "email" in fields:
            out["email"] = check_email(fields["email"], "email", e)
        if "role" in fields or row is None:
            out["role"] = check_choice(fields.get("role"), Role, "role", e, Role.REP).value
        if "team_id" in fields:
            out["team_id"] = clean_text(fields["team_id"], "team_id", entity=e, max_len=max_len(e, "team_id"))
        return out

    def search(self, text_: str, limit: int = 50) -> list[records.User]:
        """Users whose user name, display name or email contains ``text_`` (case-insensitive), by name."""
        needle = (text_ or "").strip()
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        model = models.User
        stmt = (select(model).where(model.deleted_at.is_(None), or_(
                    model.username.ilike(pattern, escape="\\"), model.display_name.ilike(pattern, escape="\\"),
                    model.email.ilike(pattern, escape="\\")))
                .order_by(model.display_name, model.id).limit(max(1, min(int(limit), MAX_PAGE))))
        with self._services.db.read_sessions() as session:
            return [self.to_record(r) for r in session.scalars(stmt)]

    def by_username(self, username: str) -> records.User | None:
        with self._services.db.read_sessions() as session:
            row = session.scalars(select(models.User).where(models.User.username == username)).first()
            return self.to_record(row) if row is not None else None
