"""What the Health page and ``crm-server health`` show: the database, the change log, workers, protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from crm_desktop.sync.protocol import PROTOCOL_VERSION
from crm_server.changelog import Cursor, InvalidCursor
from crm_server.db import Database
from crm_server.models import Change, Device, DeviceSession, PushAudit, User

#: Set by ``crm-server run`` for its workers, so each can say how many there are.
WORKERS_ENV = "CRM_SERVER_WORKERS"


@dataclass(frozen=True)
class Health:
    database_kind: str
    database_size_bytes: int | None
    change_log_rows: int
    newest_cursor: str
    oldest_cursor_in_use: str | None
    oldest_cursor_device: str | None
    devices_signed_in: int
    users: int
    audit_rows: int
    workers: int
    worker_pid: int
    protocol_version: str


def _size(db: Database, session) -> int | None:
    if db.is_sqlite:
        name = make_url(db.url).database
        if not name or name == ":memory:":
            return None
        return sum(Path(name + suffix).stat().st_size for suffix in ("", "-wal") if Path(name + suffix).exists())
    return session.scalar(text("SELECT pg_database_size(current_database())"))


def health(db: Database) -> Health:
    with db.read() as session:
        rows = session.scalar(select(func.count()).select_from(Change)) or 0
        newest = session.execute(select(Change.xid, Change.seq).order_by(Change.xid.desc(), Change.seq.desc())
                                 .limit(1)).first()
        live = select(DeviceSession.device_id).where(DeviceSession.revoked_at.is_(None))
        oldest: tuple[Cursor, str] | None = None
        for cursor_text, name, device_id in session.execute(
                select(Device.last_cursor, Device.name, Device.id).where(Device.id.in_(live))):
            try:
                cursor = Cursor.parse(cursor_text or "0")
            except InvalidCursor:
                continue
            if oldest is None or cursor < oldest[0]:
                oldest = (cursor, name or device_id)
        return Health(
            database_kind="SQLite" if db.is_sqlite else "PostgreSQL",
            database_size_bytes=_size(db, session),
            change_log_rows=rows,
            newest_cursor=str(Cursor(*newest)) if newest else "0",
            oldest_cursor_in_use=str(oldest[0]) if oldest else None,
            oldest_cursor_device=oldest[1] if oldest else None,
            devices_signed_in=session.scalar(select(func.count(func.distinct(DeviceSession.device_id)))
                                             .where(DeviceSession.revoked_at.is_(None))) or 0,
            users=session.scalar(select(func.count()).select_from(User)) or 0,
            audit_rows=session.scalar(select(func.count()).select_from(PushAudit)) or 0,
            workers=int(os.environ.get(WORKERS_ENV, "1") or 1),
            worker_pid=os.getpid(),
            protocol_version=PROTOCOL_VERSION,
        )


def human_size(value: int | None) -> str:
    if value is None:
        return "in memory"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} bytes"
