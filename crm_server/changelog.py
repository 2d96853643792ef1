"""The change log: written in the same transaction as each record change, read by pulls.

Ordering without skipped changes
--------------------------------
A sequence alone is not enough on PostgreSQL: transaction A takes seq 10, B takes
seq 11 and commits first; a pull in between returns 11 and moves the cursor past
10, which then commits and is never sent. So each row also records its writing
transaction's id (``pg_current_xact_id()``, an xid8 that never wraps), and a pull
returns only rows whose xid is below ``pg_snapshot_xmin(pg_current_snapshot())``:
every transaction older than that xmin has finished, and every transaction that
starts later gets a larger xid, so no row can appear behind the cursor any more.
Rows are ordered by (xid, seq) and the cursor is that pair. The cost: one long
transaction holds back what pulls may return (never what they return wrongly)
until it ends. On SQLite, writers are serialised by ``BEGIN IMMEDIATE``, so
``seq`` is already commit order and xid is always 0.

What a pull sends
-----------------
For each change row that concerns the user (the record is or was in their scope,
or the row was written for them alone), the record's *current* state as this user
may see it: ``upsert`` (the whole record and its version) or ``tombstone`` if it
is visible, ``remove`` if it is not. The current state is read in the same
snapshot as the log, so it is never older than the row; a client keeps a record
only if the pulled version is higher than its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, literal, select, text, tuple_
from sqlalchemy.orm import Session

from crm_desktop.sync.protocol import SHARED_ENTITIES, ChangeKind, PulledChange, PullResponse
from crm_server.auth import Principal
from crm_server.errors import ServerError
from crm_server.models import Change, Record
from crm_server.scope import can_see, changes_visible_to

_PG_XID = text("(pg_current_xact_id()::text)::bigint")
_PG_XMIN = text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


class InvalidCursor(ServerError):
    pass


@dataclass(frozen=True, order=True)
class Cursor:
    xid: int
    seq: int

    @classmethod
    def parse(cls, text_value: str) -> "Cursor":
        if text_value in ("", "0"):
            return cls(0, 0)
        try:
            xid, seq = text_value.split(".")
            cursor = cls(int(xid), int(seq))
        except ValueError:
            raise InvalidCursor(f"cursor {text_value[:40]!r} is not one this server made: pull from '0'") from None
        if cursor.xid < 0 or cursor.seq < 0:
            raise InvalidCursor(f"cursor {text_value[:40]!r} is not one this server made: pull from '0'")
        return cursor

    def __str__(self) -> str:
        return f"{self.xid}.{self.seq}" if self.xid or self.seq else "0"


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def log_change(session: Session, record: Record, *, prev_owner_id: str | None, prev_team_id: str | None,
               device_id: str | None, target_user_id: str | None = None) -> None:
    """Append the row for ``record``'s new version (flush the record first)."""
    values = dict(
        entity=record.entity, record_id=record.id, version=record.version,
        shared=record.entity in SHARED_ENTITIES, owner_id=record.owner_id, team_id=record.team_id,
        prev_owner_id=prev_owner_id, prev_team_id=prev_team_id, device_id=device_id,
        target_user_id=target_user_id,
    )
    values["xid"] = _PG_XID if _is_pg(session) else 0
    session.execute(insert(Change).values(**values))


def log_rescope(session: Session, user_id: str, record_ids_query) -> int:
    """Rows for one user alone, one per record of ``record_ids_query`` (a select of Record.id):
    that user's scope changed, so each such record is re-sent to them (upsert or remove)."""
    xid = _PG_XID if _is_pg(session) else text("0")
    rows = select(
        xid, Record.entity, Record.id, Record.version, Record.owner_id, Record.team_id,
        Record.owner_id, Record.team_id, literal(user_id),
    ).where(Record.id.in_(record_ids_query)).order_by(Record.id)
    result = session.execute(insert(Change).from_select(
        ["xid", "entity", "record_id", "version", "owner_id", "team_id", "prev_owner_id", "prev_team_id",
         "target_user_id"], rows))
    return result.rowcount or 0


def record_json(record: Record) -> dict:
    return {**record.data, "owner_id": record.owner_id, "team_id": record.team_id,
            "created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at)}


def _iso(value) -> str:
    from crm_server.auth import _aware
    return _aware(value).isoformat()


def pull(session: Session, who: Principal, cursor_text: str, limit: int) -> PullResponse:
    """One page of changes after the cursor for this user (run inside :meth:`Database.read`)."""
    cursor = Cursor.parse(cursor_text)
    order = tuple_(Change.xid, Change.seq)
    stable = [order > tuple_(cursor.xid, cursor.seq)]
    xmin = None
    if _is_pg(session):
        xmin = session.scalar(select(_PG_XMIN))
        stable.append(Change.xid < xmin)
    rows = session.execute(
        select(Change.xid, Change.seq, Change.record_id)
        .where(*stable, changes_visible_to(who))
        .order_by(Change.xid, Change.seq).limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    ids: list[str] = []
    seen: set[str] = set()
    for row in rows:
        if row.record_id not in seen:
            seen.add(row.record_id)
            ids.append(row.record_id)
    records = {r.id: r for r in session.scalars(select(Record).where(Record.id.in_(ids)))} if ids else {}
    changes = [_as_seen_by(who, records[i]) for i in ids if i in records]
    if has_more:
        next_cursor = Cursor(rows[-1].xid, rows[-1].seq)
    else:
        # Nothing more for this user below the stable frontier: skip past everyone else's rows too,
        # so the next pull does not scan them again.
        frontier = select(Change.xid, Change.seq).order_by(Change.xid.desc(), Change.seq.desc()).limit(1)
        if xmin is not None:
            frontier = frontier.where(Change.xid < xmin)
        top = session.execute(frontier).first()
        next_cursor = max(cursor, Cursor(top.xid, top.seq)) if top else cursor
        if rows:
            next_cursor = max(next_cursor, Cursor(rows[-1].xid, rows[-1].seq))
    return PullResponse(changes=changes, cursor=str(next_cursor), has_more=has_more)


def _as_seen_by(who: Principal, record: Record) -> PulledChange:
    if not can_see(who, record.entity, record.owner_id, record.team_id):
        return PulledChange(kind=ChangeKind.REMOVE, entity=record.entity, id=record.id)
    if record.deleted:
        return PulledChange(kind=ChangeKind.TOMBSTONE, entity=record.entity, id=record.id, version=record.version)
    return PulledChange(kind=ChangeKind.UPSERT, entity=record.entity, id=record.id, version=record.version,
                        record=record_json(record))
