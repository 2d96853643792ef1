"""The SQLite engines and their pragmas (DESIGN.md, Data).

Two engines share one database file: writes go through ``write_engine``,
whose transactions start with ``BEGIN IMMEDIATE`` so that two writers never
dead-lock half-way; reads go through ``read_engine`` with deferred
transactions, which under WAL never wait for a writer.

Each thread has at most one write transaction, which every write of that
thread joins: ``with db.transaction() as scope:`` (see
:mod:`crm_desktop.storage.transaction`). Reads made while it is open should
go through :meth:`Database.read_session` / :meth:`Database.read_connection`,
which read the thread's own uncommitted writes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from crm_desktop.storage.changes import WriteSession
from crm_desktop.storage.transaction import ChangeSink, TransactionScope, WriteTransaction

if TYPE_CHECKING:
    from crm_desktop.domain.actor import Actor

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
    #: called inside the transaction with each batch of changes (services: audit log, sync outbox)
    change_sinks: list[ChangeSink] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.write_engine = make_engine(self.path, immediate=True)
        self.read_engine = make_engine(self.path, immediate=False)
        # separate sessions on the write engine are for rows that are not synced; a synced row
        # flushed by one is refused (storage/changes.py): use transaction()
        self.write_sessions = sessionmaker(self.write_engine, class_=WriteSession, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        self._local = threading.local()

    def transaction(self, *, actor: "Actor | None" = None, audit_action: str | None = None,
                    replicate: bool = True, foreign_keys: bool = True) -> TransactionScope:
        """``with db.transaction(actor=...) as scope:`` — this thread's write transaction, or a
        savepoint in it when one is open (``scope.session``, ``scope.connection``).

        ``replicate=False``: the writes mirror the server (sync applying a pull or a push answer);
        they are audited but no change listener (the sync outbox) sees them, so they are never
        pushed back. It holds for every scope opened inside. ``foreign_keys=False`` (outermost
        scope only): references are not checked in this transaction, because a pulled record may
        arrive before the record it refers to, or refer to one outside this user's scope.
        """
        return TransactionScope(self, actor, audit_action, replicate=replicate, foreign_keys=foreign_keys)

    def current_transaction(self) -> WriteTransaction | None:
        """This thread's open write transaction, if any."""
        return getattr(self._local, "transaction", None)

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session to read with: the open write transaction's (it sees its own writes), else a
        read session of its own."""
        tx = self.current_transaction()
        if tx is None:
            with self.read_sessions() as session:
                yield session
            return
        with tx.guarded(None):
            yield tx.session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection to read with, like :meth:`read_session`."""
        tx = self.current_transaction()
        if tx is None:
            with self.read_engine.connect() as connection:
                yield connection
            return
        with tx.guarded(None):
            tx.session.flush()
            yield tx.connection

    def dispose(self) -> None:
        self.write_engine.dispose()
        self.read_engine.dispose()
