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

How a batch is applied (set-based, so a batch of 1000 costs a few statements, not
thousands): one query reads the current rows of every record the batch touches
(``FOR UPDATE`` on PostgreSQL, in id order so concurrent pushers cannot deadlock),
one the "edited elsewhere" versions that deletes need, one the kept answers of
duplicates; the mutations are then merged one after the other in memory (a later
mutation of the same record sees the earlier one's result), and the new and changed
rows, the change-log rows (one per new version), the kept answers and the device's
``last_mutation_id`` are written with one ``executemany`` each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
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
    is_plugin_entity,
)
from crm_server import activity, plugin_data
from crm_server.auth import Principal, now
from crm_server.changelog import current_xid, insert_changes
from crm_server.models import Change, Device, MutationResultRow, Record
from crm_server.scope import can_see, write_refusal

log = logging.getLogger(__name__)

#: How many past answers to keep per device for duplicates.
KEEP_RESULTS = 10_000
#: Ids per ``IN (...)`` list (well below SQLite's and PostgreSQL's parameter limits).
CHUNK = 900

_RECORDS = Record.__table__
_UPDATE_RECORD = (update(_RECORDS).where(_RECORDS.c.id == bindparam("record_id"))
                  .values(data=bindparam("data"), owner_id=bindparam("owner_id"), team_id=bindparam("team_id"),
                          version=bindparam("version"), deleted=bindparam("deleted"),
                          updated_at=bindparam("updated_at")))


@dataclass
class _Row:
    """A record's current state while a batch is merged (read once, written once)."""

    id: str
    entity: str
    owner_id: str | None
    team_id: str | None
    version: int
    deleted: bool
    data: dict[str, Any]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stored: bool = True
    """The row exists in the database (else it is inserted at the end)."""
    dirty: bool = False
    #: highest version of the record's change-log rows written by other devices (deletes need it)
    others_version: int = 0


@dataclass
class _Batch:
    who: Principal
    rows: dict[str, _Row]
    at: datetime
    changes: list[dict[str, Any]] = field(default_factory=list)
    #: the schemas of the plugin entities the batch touches (crm_server/plugin_data.py)
    rules: dict[str, plugin_data.TableRules] = field(default_factory=dict)
    #: the push's session: server-assigned numbers are taken in its transaction
    session: Session | None = None


def push(session: Session, who: Principal, mutations: list[Mutation]) -> PushResponse:
    device = session.get(Device, who.device_id, with_for_update=True)
    last = device.last_mutation_id
    fresh: list[Mutation] = []
    for mutation in mutations:
        if mutation.mutation_id > last:
            fresh.append(mutation)
            last = mutation.mutation_id

    batch = _Batch(who, _load(session, who, fresh), now(),
                   rules=plugin_data.rules_for(session, {m.entity for m in fresh}), session=session)
    kept = _kept_results(session, device.id, [m.mutation_id for m in mutations
                                              if m.mutation_id <= device.last_mutation_id])
    answered: dict[int, MutationResult] = {}
    results: list[MutationResult] = []
    kept_rows: list[dict[str, Any]] = []
    last = device.last_mutation_id
    for mutation in mutations:
        if mutation.mutation_id <= last:
            original = answered.get(mutation.mutation_id) or kept.get(mutation.mutation_id)
            results.append(MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.DUPLICATE,
                                          version=original.version if original else None, original=original))
            continue
        result = _apply(batch, mutation)
        activity.record(session, who, mutation, result)  # the console's audit of pushes, same transaction
        last = mutation.mutation_id
        answered[mutation.mutation_id] = result
        kept_rows.append({"device_id": device.id, "mutation_id": mutation.mutation_id,
                          "result": result.model_dump(mode="json")})
        results.append(result)

    _write(session, batch)
    if kept_rows:
        session.execute(MutationResultRow.__table__.insert(), kept_rows)
        device.last_mutation_id = last
        session.execute(delete(MutationResultRow).where(
            MutationResultRow.device_id == device.id,
            MutationResultRow.mutation_id <= last - KEEP_RESULTS))
    return PushResponse(results=results, last_mutation_id=device.last_mutation_id)


# -- reading what the batch needs, in a few statements --------------------------------------------


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _load(session: Session, who: Principal, mutations: list[Mutation]) -> dict[str, _Row]:
    """The current rows of every record the mutations touch, locked on PostgreSQL (in id order)."""
    ids = sorted({m.id for m in mutations})
    rows: dict[str, _Row] = {}
    is_pg = session.get_bind().dialect.name == "postgresql"
    for chunk in _chunks(ids):
        query = select(_RECORDS).where(_RECORDS.c.id.in_(chunk)).order_by(_RECORDS.c.id)
        if is_pg:
            query = query.with_for_update()
        for r in session.execute(query):
            rows[r.id] = _Row(r.id, r.entity, r.owner_id, r.team_id, r.version, r.deleted, r.data,
                              r.created_at, r.updated_at)
    deleting = sorted({m.id for m in mutations if m.op is Op.DELETE and m.id in rows})
    for chunk in _chunks(deleting):
        for record_id, version in session.execute(
                select(Change.record_id, func.max(Change.version))
                .where(Change.record_id.in_(chunk), Change.target_user_id.is_(None),
                       Change.device_id.is_distinct_from(who.device_id))
                .group_by(Change.record_id)):
            rows[record_id].others_version = version or 0
    return rows


def _kept_results(session: Session, device_id: str, mutation_ids: list[int]) -> dict[int, MutationResult]:
    out: dict[int, MutationResult] = {}
    for chunk in _chunks(sorted(set(mutation_ids))):
        for mutation_id, result in session.execute(
                select(MutationResultRow.mutation_id, MutationResultRow.result)
                .where(MutationResultRow.device_id == device_id, MutationResultRow.mutation_id.in_(chunk))):
            out[mutation_id] = MutationResult.model_validate(result)
    return out


def _write(session: Session, batch: _Batch) -> None:
    """New rows, changed rows and change-log rows, one ``executemany`` each."""
    inserts, updates = [], []
    for row in batch.rows.values():
        if not row.dirty:
            continue
        if row.stored:
            updates.append({"record_id": row.id, "data": row.data, "owner_id": row.owner_id,
                            "team_id": row.team_id, "version": row.version, "deleted": row.deleted,
                            "updated_at": row.updated_at})
        else:
            inserts.append({"id": row.id, "entity": row.entity, "owner_id": row.owner_id, "team_id": row.team_id,
                            "version": row.version, "deleted": row.deleted, "data": row.data,
                            "created_at": row.created_at, "updated_at": row.updated_at})
    if inserts:
        session.execute(_RECORDS.insert(), inserts)
    if updates:
        session.execute(_UPDATE_RECORD, updates)
    if batch.changes:
        insert_changes(session, batch.changes, current_xid(session))


# -- merging one mutation (in memory) -------------------------------------------------------------


def _rejected(mutation: Mutation, reason: RejectReason, message: str) -> MutationResult:
    return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.REJECTED,
                          reason=reason, message=message)


def _current(row: _Row) -> dict[str, Any]:
    return {**row.data, "owner_id": row.owner_id, "team_id": row.team_id}


def _apply(batch: _Batch, mutation: Mutation) -> MutationResult:
    who = batch.who
    try:
        if is_plugin_entity(mutation.entity):
            rules = batch.rules.get(mutation.entity)
            if rules is None:
                return _rejected(mutation, RejectReason.VALIDATION,
                                 f"the server has no schema for {mutation.entity}: a device running its plugin "
                                 f"publishes it on sync (PUT /api/v1/sync/schemas)")
            checked = rules.check_mutation(mutation)
        else:
            checked = check_mutation(mutation)
    except ValidationError as exc:
        return _rejected(mutation, RejectReason.VALIDATION, str(exc))
    refusal = write_refusal(who, mutation.entity)
    if refusal:
        return _rejected(mutation, RejectReason.PERMISSION, refusal)
    record = batch.rows.get(mutation.id)
    if record is not None and record.entity != mutation.entity:
        return _rejected(mutation, RejectReason.VALIDATION,
                         f"id {mutation.id} belongs to a {record.entity}, not a {mutation.entity}")
    if record is not None and not can_see(who, record.entity, record.owner_id, record.team_id):
        return _rejected(mutation, RejectReason.SCOPE,
                         f"this {record.entity} is not in {who.username}'s scope (its team or owner changed)")

    if mutation.op is Op.DELETE:
        return _delete(batch, mutation, record)
    if record is None:
        if mutation.op is Op.UPDATE:
            return _rejected(mutation, RejectReason.UNKNOWN_RECORD, f"the server has no {mutation.entity} {mutation.id}")
        return _create(batch, mutation, checked.new)
    if record.deleted:
        if mutation.op is Op.CREATE:
            return _merge(batch, mutation, record, {**_current(record), **checked.new}, list(checked.new),
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
    return _merge(batch, mutation, record, merged, applied, conflicts)


def _create(batch: _Batch, mutation: Mutation, new: dict[str, Any]) -> MutationResult:
    who = batch.who
    values = dict(new)
    if mutation.entity not in SHARED_ENTITIES:
        values.setdefault("owner_id", who.user_id)
        if "team_id" not in values and who.teams:
            values["team_id"] = who.teams[0]
    return _merge(batch, mutation, None, values, list(new), [])


def _log(batch: _Batch, row: _Row, prev_owner_id: str | None, prev_team_id: str | None) -> None:
    batch.changes.append(dict(
        entity=row.entity, record_id=row.id, version=row.version, shared=row.entity in SHARED_ENTITIES,
        owner_id=row.owner_id, team_id=row.team_id, prev_owner_id=prev_owner_id, prev_team_id=prev_team_id,
        device_id=batch.who.device_id, target_user_id=None))


def _merge(batch: _Batch, mutation: Mutation, record: _Row | None, merged: dict[str, Any],
           applied: list[str], conflicts: list[FieldConflict], restore: bool = False) -> MutationResult:
    who = batch.who
    try:
        if is_plugin_entity(mutation.entity):
            full = batch.rules[mutation.entity].check_record(merged)
        else:
            full = record_fields.check_record(mutation.entity, merged)
    except ValidationError as exc:
        return _rejected(mutation, RejectReason.VALIDATION, str(exc))
    owner_id, team_id = full.pop("owner_id"), full.pop("team_id")
    if not can_see(who, mutation.entity, owner_id, team_id):
        return _rejected(mutation, RejectReason.SCOPE,
                         f"owner {owner_id} / team {team_id} would take this {mutation.entity} out of "
                         f"{who.username}'s scope")
    if is_plugin_entity(mutation.entity):
        # last, once nothing else can refuse the mutation: a number taken is a number stored (no gaps)
        try:
            batch.rules[mutation.entity].number(batch.session, record.data if record is not None else None, full)
        except ValidationError as exc:
            return _rejected(mutation, RejectReason.VALIDATION, str(exc))
        if record is not None and full != record.data:
            applied = sorted(set(applied) | {k for k in full if full.get(k) != record.data.get(k)})
    if record is None:
        record = _Row(mutation.id, mutation.entity, owner_id, team_id, 1, False, full, batch.at, batch.at,
                      stored=False, dirty=True)
        batch.rows[record.id] = record
        _log(batch, record, None, None)
    elif applied or restore:
        prev_owner, prev_team = record.owner_id, record.team_id
        record.data, record.owner_id, record.team_id = full, owner_id, team_id
        record.version += 1
        record.deleted = False
        record.updated_at = batch.at
        record.dirty = True
        _log(batch, record, prev_owner, prev_team)
    status = MutationStatus.CONFLICT if conflicts else MutationStatus.APPLIED
    return MutationResult(
        mutation_id=mutation.mutation_id, status=status, version=record.version, applied_fields=applied,
        conflict=ConflictKind.FIELDS if conflicts else None, conflicts=conflicts,
        theirs=_current(record) if conflicts else None,
    )


def _delete(batch: _Batch, mutation: Mutation, record: _Row | None) -> MutationResult:
    if record is None:
        return _rejected(mutation, RejectReason.UNKNOWN_RECORD, f"the server has no {mutation.entity} {mutation.id}")
    if record.deleted:
        return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.APPLIED, version=record.version)
    rules = batch.rules.get(record.entity)
    numbered = rules.numbered(record.data) if rules is not None else None
    if numbered:
        return _rejected(mutation, RejectReason.VALIDATION,
                         f"this {record.entity} has the number {record.data[numbered]} ({numbered}); a numbered "
                         f"record is never deleted: void it instead")
    if record.others_version > mutation.base_version:  # another device changed it after this edit's base
        return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.CONFLICT,
                              version=record.version, conflict=ConflictKind.EDITED, theirs=_current(record))
    record.deleted = True
    record.version += 1
    record.updated_at = batch.at
    record.dirty = True
    _log(batch, record, record.owner_id, record.team_id)
    return MutationResult(mutation_id=mutation.mutation_id, status=MutationStatus.APPLIED, version=record.version)
