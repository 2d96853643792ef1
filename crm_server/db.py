"""Engines, transactions and migrations for the server database.

PostgreSQL (``postgresql://...``, driven by psycopg 3) in production; a SQLite
file as the embedded default. On SQLite every write transaction starts with
``BEGIN IMMEDIATE``, so writers are serialised and the change log's sequence
is in commit order; on PostgreSQL pulls order the log by transaction id
instead (see :mod:`crm_server.changelog`).
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from platformdirs import user_data_dir
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from crm_server.errors import ServerError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DB_ENV = "CRM_SERVER_DB"


def default_db_url() -> str:
    """``$CRM_SERVER_DB``, else a SQLite file in the user's data folder."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    folder = Path(user_data_dir("crm-server", appauthor=False))
    return f"sqlite:///{folder / 'crm-server.db'}"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://``/``postgres://`` (use psycopg 3), ``sqlite:///`` and a plain file path."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ServerError(f"--db {url!r}: not a database URL (use postgresql://user@host/db or sqlite:///FILE)") from None
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ServerError(f"--db {url!r}: only PostgreSQL and SQLite are supported")
    return url


class Database:
    """One engine and the session factories over it."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False},
                                        pool_size=8, max_overflow=16)
            _sqlite_transactions(self.engine)
        else:
            self.engine = create_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = (self.engine if self.is_sqlite
                             else self.engine.execution_options(isolation_level="REPEATABLE READ"))
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        bind = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction over one snapshot (REPEATABLE READ on PostgreSQL)."""
        with self._read_sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy's transactions be SQLite's: our BEGIN, WAL, foreign keys, a busy timeout."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # pysqlite must not BEGIN on its own
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        immediate = conn.get_execution_options().get("sqlite_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# --------------------------------------------------------------------------- migrations


def _alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def migrate(db: Database) -> None:
    """Bring the database to the newest revision; refuse one newer than this server knows."""
    cfg = _alembic_config(db)
    script = ScriptDirectory.from_config(cfg)
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None and not _known(script, current):
        raise ServerError(f"the database is at revision {current}, newer than this crm-server knows: upgrade crm-server")
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False
