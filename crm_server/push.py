"""Applying a pushed batch: exactly once, merged per field, checked against scope.

One batch is one transaction. The device row is locked first, so two pushes from
one device never interleave; a mutation whose id is not above the device's
``last_mutation_id`` was applied before and is answered ``duplicate`` (with the
answer it got then). Every other mutation is answered and acknowledged —
``applied``, ``conflict`` or ``rejected`` — and moves ``last_mutation_id`` on
in the same transaction as its change, so a crash anywhere either keeps both or
neither (Replicache's lastMutationID scheme). A rejected mutation changes
nothing and never holds back the mutations behind it.

Merge rules (docs/sync-protocol.md has the table):

- update: per field, if the server value equals the client's base, the new value
  is taken; if it already equals the new value nothing is to do; otherwise the
  field is a conflict (the server keeps its value and answers it as ``theirs``).
  The other fields of the mutation still apply.
- update of a deleted record: nothing applied, ``conflict`` of kind ``deleted``.
  To keep the edit the client sends a ``create`` with the whole record, which
  restores it.
- delete of a record another device changed after ``base_version``: not deleted,
  ``conflict`` of kind ``edited`` with the record as it stands; sending the delete
  again with the new version deletes it.
- create of an existing live record: merged like an update whose bases are all null.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from crm_desktop.domain import record_fields
from crm_desktop.errors import ValidationError
from crm_desktop.sync.protocol import (
    SHARED_ENTITIES,
    ConflictKind,
    FieldConflict,
    Mutation,
    MutationResult,
    MutationStatus,
    Op,
    PushResponse,
    RejectReason,
    check_mutation,
)
from crm_server import activity
from crm_server.auth import Principal, now
from crm_server.changelog import log_change
from crm_server.models import Change, Device, MutationResultRow, Record
from crm_server.scope import can_see, write_refusal

log = logging.getLogger(__name__)

#: How many past answers to keep per device for duplicates.
KEEP_RESULTS = 10_000


def push(session: Session, who: Principal, mutations: list[Mutation]) -> PushResponse:
    device = session.get(Device, who.device_id, with_for_update=True)
    results: list[MutationResult] = []
    for mutation in mutations:
        if mutation.mutation_id <= device.last_mutation_id:
            kept = session.get(MutationResultRow, (device.id, mutation.mutation_id))
            original = MutationResult.model_validate(kept.result) if kept else None
            results.append(MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.DUPLICATE,
                                          version=original.version if original else None, original=original))
            continue
        result = _apply(session, who, mutation)
        activity.record(session, who, mutation, result)
        device.last_mutation_id = mutation.mutation_id
        session.add(MutationResultRow(device_id=device.id, mutation_id=mutation.mutation_id,
                                      result=result.model_dump(mode="json")))
        results.append(result)
    session.execute(delete(MutationResultRow).where(
        MutationResultRow.device_id == device.id,
        MutationResultRow.mutation_id <= device.last_mutation_id - KEEP_RESULTS))
    return PushResponse(results=results, last_mutation_id=device.last_mutation_id)


def _rejected(mutation: Mutation, reason: RejectReason, message: str) -> MutationResult:
    return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.REJECTED,
                          reason=reason, message=message)


def _current(record: Record) -> dict[str, Any]:
    return {**record.data, "owner_id": record.owner_id, "team_id": record.team_id}


def _apply(session: Session, who: Principal, mutation: Mutation) -> MutationResult:
    try:
        checked = check_mutation(mutation)
    except ValidationError as exc:
        return _rejected(mutation, RejectReason.VALIDATION, str(exc))
    refusal = write_refusal(who, mutation.entity)
    if refusal:
        return _rejected(mutation, RejectReason.PERMISSION, refusal)
    record = session.get(Record, mutation.id, with_for_update=True)
    if record is not None and record.entity != mutation.entity:
        return _rejected(mutation, RejectReason.VALIDATION,
                         f"id {mutation.id} belongs to a {record.entity}, not a {mutation.entity}")
    if record is not None and not can_see(who, record.entity, record.owner_id, record.team_id):
        return _rejected(mutation, RejectReason.SCOPE,
                         f"this {record.entity} is not in {who.username}'s scope (its team or owner changed)")

    if mutation.op is Op.DELETE:
        return _delete(session, who, mutation, record)
    if record is None:
        if mutation.op is Op.UPDATE:
            return _rejected(mutation, RejectReason.UNKNOWN_RECORD, f"the server has no {mutation.entity} {mutation.id}")
        return _create(session, who, mutation, checked.new)
    if record.deleted:
        if mutation.op is Op.CREATE:
            return _write(session, who, mutation, record, {**_current(record), **checked.new}, list(checked.new),
                          [], restore=True)
        return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.CONFLICT,
                              version=record.version, conflict=ConflictKind.DELETED, theirs=None)

    current = _current(record)
    base = checked.base if mutation.op is Op.UPDATE else {name: None for name in checked.new}
    merged = dict(current)
    applied: list[str] = []
    conflicts: list[FieldConflict] = []
    for name, new in checked.new.items():
        theirs = current.get(name)
        if theirs == new:
            continue
        if theirs == base.get(name):
            merged[name] = new
            applied.append(name)
        else:
            conflicts.append(FieldConflict(field=name, base=base.get(name), mine=new, theirs=theirs))
    return _write(session, who, mutation, record, merged, applied, conflicts)


def _create(session: Session, who: Principal, mutation: Mutation, new: dict[str, Any]) -> MutationResult:
    values = dict(new)
    if mutation.entity not in SHARED_ENTITIES:
        values.setdefault("owner_id", who.user_id)
        if "team_id" not in values and who.teams:
            values["team_id"] = who.teams[0]
    return _write(session, who, mutation, None, values, list(new), [])


def _write(session: Session, who: Principal, mutation: Mutation, record: Record | None, merged: dict[str, Any],
           applied: list[str], conflicts: list[FieldConflict], restore: bool = False) -> MutationResult:
    try:
        full = record_fields.check_record(mutation.entity, merged)
    except ValidationError as exc:
        return _rejected(mutation, RejectReason.VALIDATION, str(exc))
    owner_id, team_id = full.pop("owner_id"), full.pop("team_id")
    if not can_see(who, mutation.entity, owner_id, team_id):
        return _rejected(mutation, RejectReason.SCOPE,
                         f"owner {owner_id} / team {team_id} would take this {mutation.entity} out of "
                         f"{who.username}'s scope")
    if record is None:
        record = Record(id=mutation.id, entity=mutation.entity, owner_id=owner_id, team_id=team_id, version=1,
                        deleted=False, data=full, created_at=now(), updated_at=now())
        session.add(record)
        session.flush()
        log_change(session, record, prev_owner_id=None, prev_team_id=None, device_id=who.device_id)
    elif applied or restore:
        prev_owner, prev_team = record.owner_id, record.team_id
        record.data, record.owner_id, record.team_id = full, owner_id, team_id
        record.version += 1
        record.deleted = False
        record.updated_at = now()
        session.flush()
        log_change(session, record, prev_owner_id=prev_owner, prev_team_id=prev_team, device_id=who.device_id)
    status = MutationStatus.CONFLICT if conflicts else MutationStatus.APPLIED
    return MutationResult(
        mutation_id=mutation.mutation_id, status=status, version=record.version, applied_fields=applied,
        conflict=ConflictKind.FIELDS if conflicts else None, conflicts=conflicts,
        theirs={**record.data, "owner_id": record.owner_id, "team_id": record.team_id} if conflicts else None,
    )


def _delete(session: Session, who: Principal, mutation: Mutation, record: Record | None) -> MutationResult:
    if record is None:
        return _rejected(mutation, RejectReason.UNKNOWN_RECORD, f"the server has no {mutation.entity} {mutation.id}")
    if record.deleted:
        return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.APPLIED, version=record.version)
    edited_elsewhere = session.scalar(select(exists().where(
        Change.record_id == record.id, Change.version > mutation.base_version,
        Change.target_user_id.is_(None), Change.device_id.is_distinct_from(who.device_id))))
    if edited_elsewhere:
        return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.CONFLICT,
                              version=record.version, conflict=ConflictKind.EDITED, theirs=_current(record))
    record.deleted = True
    record.version += 1
    record.updated_at = now()
    session.flush()
    log_change(session, record, prev_owner_id=record.owner_id, prev_team_id=record.team_id, device_id=who.device_id)
    return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.APPLIED, version=record.version)
