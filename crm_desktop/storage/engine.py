"""The SQLite engines and their pragmas (DESIGN.md, Data).

Two engines share one database file: writes go through ``write_engine``,
whose transactions start with ``BEGIN IMMEDIATE`` so that two writers never
dead-lock half-way; reads go through ``read_engine`` with deferred
transactions, which under WAL never wait for a writer.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

#: How long a writer waits for another process's write lock (``CRM_DESKTOP_LOCK_WAIT`` seconds overrides).
BUSY_TIMEOUT_MS = 10_000


def busy_timeout_ms() -> int:
    from crm_desktop.storage.health import lock_wait_seconds

    return int(lock_wait_seconds(BUSY_TIMEOUT_MS / 1000) * 1000)


def _configure(dbapi_connection: sqlite3.Connection) -> None:
    # Autocommit at the driver level: we issue BEGIN ourselves (see _begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an edit made offline exists nowhere else, so it must survive power loss.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cursor.execute("PRAGMA cache_size=-32000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(path: Path, *, immediate: bool) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms() / 1000},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        _configure(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """One open database file: its engines and session factories."""

    path: Path
    write_engine: Engine = field(init=False)
    read_engine: Engine = field(init=False)
    write_sessions: sessionmaker[Session] = field(init=False)
    read_sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.write_engine = make_engine(self.path, immediate=True)
        self.read_engine = make_engine(self.path, immediate=False)
        self.write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()
