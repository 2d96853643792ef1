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

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
from sqlalchemy import Text, cast, insert, literal, select, text, tuple_
from sqlalchemy.orm import Session

from crm_desktop.sync.protocol import SHARED_ENTITIES, PullResponse
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


def current_xid(session: Session) -> int:
    """This transaction's id on PostgreSQL (assigned now if it has none yet), 0 on SQLite."""
    return int(session.scalar(select(_PG_XID))) if _is_pg(session) else 0


def insert_changes(session: Session, rows: list[dict], xid: int) -> None:
    """Append change-log rows (dicts of :class:`Change` columns but ``seq``/``xid``) with one
    ``executemany``; ``seq`` follows the list's order."""
    session.execute(Change.__table__.insert(), [{**row, "xid": xid} for row in rows])


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


def _iso(value) -> str:
    return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).isoformat()


_CHANGES = Change.__table__
_RECORDS = Record.__table__
#: a change-log row and its record's current state, in one query (outer join: a row whose record
#: is gone still moves the cursor)
_PAGE = select(
    _CHANGES.c.xid, _CHANGES.c.seq, _CHANGES.c.record_id, _RECORDS.c.entity, _RECORDS.c.owner_id,
    _RECORDS.c.team_id, _RECORDS.c.version, _RECORDS.c.deleted, cast(_RECORDS.c.data, Text).label("data"),
    _RECORDS.c.created_at, _RECORDS.c.updated_at,
).select_from(_CHANGES.outerjoin(_RECORDS, _RECORDS.c.id == _CHANGES.c.record_id))


def pull_page(session: Session, who: Principal, cursor_text: str, limit: int) -> dict:
    """One page of changes after the cursor for this user, as the wire's plain JSON data
    (a :class:`PullResponse` in shape; run inside :meth:`Database.read`).

    One query reads the page's change-log rows joined to their records' current state; a
    record's ``data`` is read as JSON text and parsed with orjson, not through the ORM, so a page
    of 5000 records costs a few milliseconds of Python per thousand."""
    cursor = Cursor.parse(cursor_text)
    xmin = None
    if _is_pg(session):
        # PostgreSQL compares the row value inside the (xid, seq) index: a range scan from the cursor
        stable = [tuple_(_CHANGES.c.xid, _CHANGES.c.seq) > tuple_(cursor.xid, cursor.seq)]
        xmin = session.scalar(select(_PG_XMIN))
        stable.append(_CHANGES.c.xid < xmin)
    else:
        # SQLite's planner turns that row value into "xid >= ?", a walk over every row of the log
        # (all have xid 0), so the cost of a pull would grow with the log. xid is always 0 here
        # (writers are serialised, seq is commit order), so this is the same set, as a range scan.
        stable = [_CHANGES.c.xid == cursor.xid, _CHANGES.c.seq > cursor.seq]
    rows = session.execute(
        _PAGE.where(*stable, changes_visible_to(who))
        .order_by(_CHANGES.c.xid, _CHANGES.c.seq).limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    changes: list[dict] = []
    seen: set[str] = set()
    for row in rows:
        record_id = row.record_id
        if record_id in seen or row.entity is None:
            continue
        seen.add(record_id)
        entity = row.entity
        if not can_see(who, entity, row.owner_id, row.team_id):
            changes.append({"kind": "remove", "entity": entity, "id": record_id})
        elif row.deleted:
            changes.append({"kind": "tombstone", "entity": entity, "id": record_id, "version": row.version})
        else:
            record = loads(row.data)
            record["owner_id"] = row.owner_id
            record["team_id"] = row.team_id
            record["created_at"] = row.created_at  # encode() writes ISO 8601, naive ones as UTC
            record["updated_at"] = row.updated_at
            changes.append({"kind": "upsert", "entity": entity, "id": record_id, "version": row.version,
                            "record": record})
    if has_more:
        next_cursor = Cursor(rows[-1].xid, rows[-1].seq)
    else:
        # Nothing more for this user below the stable frontier: skip past everyone else's rows too,
        # so the next pull does not scan them again.
        frontier = select(_CHANGES.c.xid, _CHANGES.c.seq).order_by(_CHANGES.c.xid.desc(),
                                                                  _CHANGES.c.seq.desc()).limit(1)
        if xmin is not None:
            frontier = frontier.where(_CHANGES.c.xid < xmin)
        top = session.execute(frontier).first()
        next_cursor = max(cursor, Cursor(top.xid, top.seq)) if top else cursor
        if rows:
            next_cursor = max(next_cursor, Cursor(rows[-1].xid, rows[-1].seq))
    return {"changes": changes, "cursor": str(next_cursor), "has_more": has_more}


def pull(session: Session, who: Principal, cursor_text: str, limit: int) -> PullResponse:
    """:func:`pull_page` as the protocol's model (for callers in Python; the app sends the bytes
    of :func:`encode` instead of validating the page twice)."""
    return PullResponse.model_validate_json(encode(pull_page(session, who, cursor_text, limit)))


def loads(text_value: str | bytes):
    """A record's stored JSON. orjson reads integers past 64 bits as floats; records cannot hold
    such (``record_fields`` bounds every integer field far below), so it reads them exactly."""
    try:
        return orjson.loads(text_value)
    except orjson.JSONDecodeError:  # e.g. NaN, which Python's json writes and orjson refuses
        return json.loads(text_value)


def encode(body) -> bytes:
    """JSON bytes of a wire body: orjson (datetimes as ISO 8601 with their offset, naive ones, as
    SQLite hands them back, as UTC: what ``isoformat()`` of the aware value writes), or the json
    module for what orjson refuses (ints past 64 bits)."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_default).encode()


def _json_default(value):
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
