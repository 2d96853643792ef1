"""Tags, shared by companies, contacts, leads and deals."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import max_len
from crm_desktop.domain.validation import clean_text, normalize_name
from crm_desktop.errors import ValidationError
from crm_desktop.services.entity import EntityService
from crm_desktop.storage import models


class TagService(EntityService[models.Tag, records.Tag]):
    entity = "tag"
    model = models.Tag
    record_type = records.Tag
    writable = ("name", "color")
    sort_keys = {"name": "name_key"}

    def clean(self, session: Session, fields: dict[str, Any], row: models.Tag | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if row is None or "name" in fields:
            name = clean_text(fields.get("name"), "name", entity=self.entity, max_len=max_len("tag", "name"), required=True)
            key = normalize_name(name)
            clash = session.scalar(select(models.Tag.id).where(models.Tag.name_key == key))
            if clash is not None and (row is None or clash != row.id):
                raise ValidationError("name", name, "a tag with this name exists already", self.entity)
            out["name"], out["name_key"] = name, key
        if "color" in fields:
            out["color"] = clean_text(fields["color"], "color", entity=self.entity, max_len=max_len("tag", "color"))
        return out

    def all(self) -> list[records.Tag]:
        with self._services.db.read_sessions() as session:
            rows = session.scalars(select(models.Tag).where(models.Tag.deleted_at.is_(None))
                                   .order_by(models.Tag.name_key)).all()
            return [self.to_record(r) for r in rows]

    def clean_name(self, raw: str) -> tuple[str, str] | None:
        """``(name, name_key)`` of the tag ``raw`` names, as :meth:`ensure` stores it (control
        characters and outer spaces removed); None when nothing of a name is left."""
        name = clean_text(raw, "tags", entity=self.entity, max_len=max_len("tag", "name"))
        key = normalize_name(name)  # None exactly when there is no name (clean_text strips)
        return (name, key) if name is not None and key is not None else None

    def ensure(self, session: Session, names: Sequence[str] | str) -> list[models.Tag]:
        """Tag rows for these names, creating the missing ones (in the caller's transaction)."""
        if isinstance(names, str):
            names = [n for n in names.split(",")]
        wanted: dict[str, str] = {}
        for raw in names:
            cleaned = self.clean_name(raw)
            if cleaned is not None:
                wanted.setdefault(cleaned[1], cleaned[0])
        if not wanted:
            return []
        found = {t.name_key: t for t in session.scalars(select(models.Tag).where(models.Tag.name_key.in_(wanted)))}
        tags = []
        for key, name in wanted.items():
            tag = found.get(key)
            if tag is None:
                tag = models.Tag(name=name, name_key=key)  # stamped when flushed (storage/changes.py)
                session.add(tag)
            elif tag.deleted_at is not None:
                tag.deleted_at = None
            tags.append(tag)
        return tags
