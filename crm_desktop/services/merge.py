"""Merging two contacts that are one person.

Everything happens in one unit of work: the survivor's empty fields are
filled from the duplicate (or each field taken from the side the user chose),
the duplicate's activities, deals, tags and converted leads move to the
survivor, and the duplicate is tombstoned. Each change is written as the
ordinary update or delete that sync needs, with the audit action ``merge``;
after the commit the event ``contact.merged`` is published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

from sqlalchemy import select

from crm_desktop.domain import records
from crm_desktop.domain.record_fields import field_specs
from crm_desktop.errors import ValidationError
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.storage import models
from crm_desktop.storage.base import SyncedRow, utcnow

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

Side = Literal["survivor", "duplicate"]
SIDES = ("survivor", "duplicate")
#: contact fields a merge decides between (tags are always united)
#: the contact fields a merge chooses between, from the field table (tags are joined, not chosen)
MERGE_FIELDS: tuple[str, ...] = tuple(f.name for f in field_specs("contact") if f.kind != "tags")
AUDIT_ACTION = "merge"


@dataclass(frozen=True)
class MergeResult:
    """The merged contact as stored, and what moved to it."""

    contact: records.Contact
    duplicate_id: str
    fields_taken: tuple[str, ...]
    moved_activities: int
    moved_deals: int


class MergeService:
    """``services.merge``: merge records that are one and the same."""

    def __init__(self, services: "CrmServices"):
        self._services = services

    def contacts(self, survivor_id: str, duplicate_id: str,
                 field_choices: Mapping[str, Side] | None = None) -> MergeResult:
        """Merge contact ``duplicate_id`` into ``survivor_id``; the duplicate is tombstoned.

        ``field_choices`` maps a field to ``"survivor"`` or ``"duplicate"``: whose
        value to keep. A field not named keeps the survivor's value, or takes the
        duplicate's when the survivor's is empty.
        """
        if survivor_id == duplicate_id:
            raise ValidationError("duplicate_id", duplicate_id, "must be another contact than the survivor", "merge")
        choices = dict(field_choices or {})
        for name, side in choices.items():
            if name not in MERGE_FIELDS:
                raise ValidationError("field_choices", name,
                                      f"is not a field a merge chooses (fields: {', '.join(MERGE_FIELDS)})", "merge")
            if side not in SIDES:
                raise ValidationError(f"field_choices[{name}]", side, "must be 'survivor' or 'duplicate'", "merge")
        contacts = self._services.contacts
        # every change is the ordinary update or delete sync needs; the audit action says "merge"
        with self._services.unit_of_work(audit_action=AUDIT_ACTION) as uow:
            session = uow.session
            survivor = contacts.live_row(session, survivor_id)
            duplicate = contacts.live_row(session, duplicate_id)
            taken = {}
            for name in MERGE_FIELDS:
                mine, theirs = getattr(survivor, name), getattr(duplicate, name)
                side = choices.get(name) or ("duplicate" if mine in (None, "") and theirs not in (None, "")
                                             else "survivor")
                if side == "duplicate" and theirs != mine:
                    taken[name] = theirs
            # The same validation as an edit (keys recomputed, company must be live).
            values = contacts.clean(session, dict(taken), survivor) if taken else {}
            changed = {}
            for name, value in values.items():
                old = getattr(survivor, name)
                if old != value:
                    setattr(survivor, name, value)
                    if not name.endswith("_key"):
                        changed[name] = (old, value)
            old_tags = sorted(t.name for t in survivor.tags)
            united = {t.id: t for t in survivor.tags}
            united.update({t.id: t for t in duplicate.tags})
            if len(united) != len(survivor.tags):
                survivor.tags = list(united.values())
                changed["tags"] = (old_tags, sorted(t.name for t in survivor.tags))
            session.flush()
            moved_activities = self._repoint(uow, models.Activity, "activity", "contact_id", duplicate_id, survivor_id)
            moved_deals = self._repoint(uow, models.Deal, "deal", "contact_id", duplicate_id, survivor_id)
            self._repoint(uow, models.Lead, "lead", "converted_contact_id", duplicate_id, survivor_id)
            duplicate.deleted_at = utcnow()
            session.flush()
            fields_taken = tuple(sorted(k for k in changed if k != "tags"))
            uow.publish_after_commit("contact.updated", {"id": survivor_id, "fields": sorted(changed)})
            uow.publish_after_commit("contact.deleted", {"id": duplicate_id})
            uow.publish_after_commit("contact.merged", {
                "survivor_id": survivor_id, "duplicate_id": duplicate_id, "fields": list(fields_taken),
                "moved_activities": moved_activities, "moved_deals": moved_deals,
            })
            session.refresh(survivor)
            record = contacts.to_record(survivor)
        log.info("merged contact %s into %s (%d activities, %d deals moved)",
                 duplicate_id, survivor_id, moved_activities, moved_deals)
        return MergeResult(record, duplicate_id, fields_taken, moved_activities, moved_deals)

    @staticmethod
    def _repoint(uow: UnitOfWork, model: type[SyncedRow], entity: str, column: str, old_id: str, new_id: str) -> int:
        """Point every live row of ``model`` from ``old_id`` to ``new_id``; each is an audited update."""
        rows = uow.session.scalars(select(model).where(getattr(model, column) == old_id,
                                                       model.deleted_at.is_(None))).all()
        for row in rows:
            setattr(row, column, new_id)
        uow.session.flush()
        for row in rows:
            uow.publish_after_commit(f"{entity}.updated", {"id": row.id, "fields": [column]})
        return len(rows)
