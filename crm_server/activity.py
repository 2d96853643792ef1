"""The server's audit of pushes: who changed what from which device, and what came of it.

:func:`record` writes one row per pushed mutation in the push's own transaction,
so the audit and the change agree. :func:`query` filters it for the console and
:func:`write_csv` exports it with every cell that a spreadsheet would read as a
formula neutralised (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import IO, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_desktop.sync.protocol import Mutation, MutationResult, MutationStatus
from crm_server.auth import Principal, now
from crm_server.errors import ServerError
from crm_server.models import Device, PushAudit, Team, TeamMember

#: Rows one page of the console shows, and the most one CSV export holds.
PAGE = 100
MAX_EXPORT = 100_000
ACTORS = ("user", "plugin", "agent")
STATUSES = tuple(s.value for s in MutationStatus)


def record(session: Session, who: Principal, mutation: Mutation, result: MutationResult) -> None:
    if result.status == MutationStatus.DUPLICATE:
        return
    if result.status == MutationStatus.CONFLICT:
        fields = [c.field for c in result.conflicts] or list(mutation.fields)
    elif result.status == MutationStatus.APPLIED:
        fields = list(result.applied_fields) or list(mutation.fields)
    else:
        fields = list(mutation.fields)
    message = result.message
    if result.status == MutationStatus.CONFLICT and result.conflict is not None:
        message = f"conflict ({result.conflict})"
    session.add(PushAudit(at=now(), user_id=who.user_id, username=who.username, device_id=who.device_id,
                          actor=mutation.actor or "user", mutation_id=mutation.mutation_id, entity=mutation.entity,
                          record_id=mutation.id, op=str(mutation.op), status=str(result.status),
                          fields=sorted(fields), message=message))


@dataclass(frozen=True)
class ActivityFilter:
    username: str = ""
    device: str = ""
    actor: str = ""
    entity: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    #: a manager's view: only the members of these teams (names)
    teams: frozenset[str] | None = None

    @classmethod
    def parse(cls, params: dict[str, str], teams: frozenset[str] | None = None) -> "ActivityFilter":
        def day(name: str) -> date | None:
            value = (params.get(name) or "").strip()
            if not value:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ServerError(f"{name} {value!r} is not a date like 2026-01-31") from None

        actor = (params.get("actor") or "").strip()
        if actor and actor not in ACTORS:
            raise ServerError(f"actor {actor!r} is not one of {', '.join(ACTORS)}")
        status = (params.get("status") or "").strip()
        if status and status not in STATUSES:
            raise ServerError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        found = cls(username=(params.get("user") or "").strip(), device=(params.get("device") or "").strip(),
                    actor=actor, entity=(params.get("entity") or "").strip(), status=status,
                    since=day("since"), until=day("until"), teams=teams)
        if found.since and found.until and found.since > found.until:
            raise ServerError("since is after until: swap the two dates")
        return found

    def where(self):
        clauses = []
        if self.username:
            clauses.append(PushAudit.username == self.username)
        if self.device:
            names = select(Device.id).where(Device.name == self.device)
            clauses.append(PushAudit.device_id.in_(names) | (PushAudit.device_id == self.device))
        if self.actor == "user":
            clauses.append(PushAudit.actor == "user")
        elif self.actor:
            clauses.append(PushAudit.actor.like(f"{self.actor}:%"))
        if self.entity:
            clauses.append(PushAudit.entity == self.entity)
        if self.status:
            clauses.append(PushAudit.status == self.status)
        if self.since:
            clauses.append(PushAudit.at >= datetime.combine(self.since, time.min, timezone.utc))
        if self.until:
            clauses.append(PushAudit.at < datetime.combine(self.until + timedelta(days=1), time.min, timezone.utc))
        if self.teams is not None:
            members = (select(TeamMember.user_id).join(Team, Team.id == TeamMember.team_id)
                       .where(Team.name.in_(sorted(self.teams))))
            clauses.append(PushAudit.user_id.in_(members))
        return clauses


def query(session: Session, flt: ActivityFilter, before: int | None = None, limit: int = PAGE) -> list[PushAudit]:
    """Newest first, a page by key: ``before`` is the id of the last row of the previous page."""
    q = select(PushAudit).where(*flt.where())
    if before is not None:
        q = q.where(PushAudit.id < before)
    return list(session.scalars(q.order_by(PushAudit.id.desc()).limit(limit)))


@dataclass(frozen=True)
class DayCount:
    day: str
    conflicts: int
    rejected: int


def by_day(session: Session, days: int = 14, teams: frozenset[str] | None = None) -> list[DayCount]:
    """Conflicts and rejections per day (UTC) of the last ``days`` days, newest first, days without any left out."""
    since = now() - timedelta(days=days)
    flt = ActivityFilter(teams=teams)
    rows = session.execute(select(PushAudit.at, PushAudit.status)
                           .where(PushAudit.at >= since, PushAudit.status.in_(("conflict", "rejected")),
                                  *flt.where()))
    counts: dict[str, list[int]] = {}
    for at, status in rows:
        key = at.date().isoformat()
        pair = counts.setdefault(key, [0, 0])
        pair[0 if status == "conflict" else 1] += 1
    return [DayCount(day, c, r) for day, (c, r) in sorted(counts.items(), reverse=True)]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("time", "user", "device", "actor", "entity", "record", "op", "status", "fields", "message")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ' before = + - @ tab CR (OWASP)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(out: IO[str], rows: Iterable[PushAudit], device_names: dict[str, str]) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in (
            row.at.isoformat() if row.at else "", row.username, device_names.get(row.device_id, row.device_id),
            row.actor, row.entity, row.record_id, row.op, row.status, " ".join(row.fields or []), row.message)])
        count += 1
    return count


def export_rows(session: Session, flt: ActivityFilter) -> list[PushAudit]:
    return list(session.scalars(select(PushAudit).where(*flt.where()).order_by(PushAudit.id.desc())
                                .limit(MAX_EXPORT)))


def device_names(session: Session) -> dict[str, str]:
    return {d: n or d for d, n in session.execute(select(Device.id, Device.name))}


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PushAudit)) or 0
