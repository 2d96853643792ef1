"""Is the database file ours, sound and reachable? And what does a SQLite error mean to the user?

* :func:`check_database_file` runs on every open, before anything is written: the file must
  be empty/new or a SQLite database with the crm-desktop schema (never someone else's
  database, which would silently get our tables), not truncated, and pass
  ``PRAGMA quick_check`` (about 1.5 ms per MB). A damaged database is refused with
  :class:`DatabaseDamaged`, whose message offers ``crm-desktop db recover``.
* :func:`explain` turns any ``sqlite3`` / SQLAlchemy error into one of the
  :class:`~crm_desktop.errors.DatabaseError` subclasses below with a one-line message:
  locked (another process is writing), damaged (``SQLITE_CORRUPT``/``NOTADB``), not
  writable (permissions, read-only file system), full.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from crm_desktop.errors import DatabaseError

SQLITE_HEADER = b"SQLite format 3\x00"
#: Tables every crm-desktop database has (from the first core revision on).
CORE_TABLES = frozenset({"alembic_version", "contacts", "companies"})

# primary result codes (https://sqlite.org/rescode.html)
_BUSY, _LOCKED, _PERM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 3, 8, 10, 11, 13, 14, 26

RECOVER_HINT = "run `crm-desktop db recover` (restores the last good backup and salvages readable rows; " \
               "the damaged file is kept)"


class DatabaseLocked(DatabaseError):
    """Another process holds the write lock (or an exclusive lock) on the database."""


class DatabaseDamaged(DatabaseError):
    """The database file is corrupt; nothing may be written to it."""


class DatabaseUnwritable(DatabaseError):
    """The database (or its folder) cannot be read or written: permissions, read-only media, disk full."""


class NotOurDatabase(DatabaseError):
    """A SQLite file (or another file) that crm-desktop did not create."""


def _sqlite_error(exc: BaseException) -> sqlite3.Error | None:
    if isinstance(exc, sqlite3.Error):
        return exc
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError
    return orig if isinstance(orig, sqlite3.Error) else None


def error_kind(exc: BaseException) -> str | None:
    """``locked``, ``damaged``, ``unwritable``, ``full`` or None for a SQLite error."""
    error = _sqlite_error(exc)
    if error is None:
        return None
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(error).lower()
    if code in (_BUSY, _LOCKED) or "database is locked" in text:
        return "locked"
    if code in (_CORRUPT, _NOTADB) or "malformed" in text or "not a database" in text:
        return "damaged"
    if code == _FULL or "database or disk is full" in text:
        return "full"
    if code in (_PERM, _READONLY, _CANTOPEN) or "readonly" in text or "unable to open" in text:
        return "unwritable"
    if code == _IOERR or "disk i/o error" in text:
        return "unwritable"
    return None


def explain(exc: BaseException, db_path: Path | str) -> DatabaseError | None:
    """The one-line error for a SQLite failure on ``db_path`` (None if it is not one we know)."""
    kind = error_kind(exc)
    error = _sqlite_error(exc)
    detail = str(error) if error is not None else str(exc)
    if kind == "locked":
        return DatabaseLocked(f"{db_path}: another crm-desktop process is writing to the database; "
                              f"wait until it has finished (or close the other crm-desktop) and try again")
    if kind == "damaged":
        return DatabaseDamaged(f"{db_path}: the database is damaged ({detail}); nothing was written; {RECOVER_HINT}")
    if kind == "full":
        return DatabaseUnwritable(f"{db_path}: no space left on the device; nothing was written")
    if kind == "unwritable":
        return DatabaseUnwritable(f"{db_path}: cannot use the database: {detail} "
                                  f"(check the permissions of the file and its folder, and free space)")
    return None


def _header(db_path: Path) -> bytes:
    with open(db_path, "rb") as fh:
        return fh.read(100)


def check_database_file(db_path: Path, *, thorough: bool = True, timeout: float = 2.0) -> None:
    """Raise a :class:`DatabaseError` subclass unless ``db_path`` is absent/empty or a sound
    crm-desktop database. ``thorough`` adds ``PRAGMA quick_check``. Writes nothing."""
    db_path = Path(db_path)
    try:
        if not db_path.exists() or db_path.stat().st_size == 0:
            return
        if db_path.is_dir():
            raise DatabaseUnwritable(f"{db_path}: is a folder, not a database file")
        header = _header(db_path)
    except PermissionError:
        raise DatabaseUnwritable(f"{db_path}: no permission to read the database") from None
    except OSError as exc:
        raise DatabaseUnwritable(f"{db_path}: cannot read the database: {exc.strerror}") from None
    if not header.startswith(SQLITE_HEADER):
        raise NotOurDatabase(f"{db_path}: is not a SQLite database (another program's file, or damaged); "
                             f"crm-desktop will not touch it: move it away, use another --home, or {RECOVER_HINT}")
    if len(header) == 100:
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        valid = header[24:28] == header[92:96]  # the in-header size is valid when these counters match
        if valid and page_size and pages and db_path.stat().st_size < page_size * pages:
            raise DatabaseDamaged(f"{db_path}: the database is damaged (the file is truncated: "
                                  f"{db_path.stat().st_size} of {page_size * pages} bytes); {RECOVER_HINT}")
    try:
        conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        raise explain(exc, db_path) or DatabaseError(f"{db_path}: cannot open the database: {exc}") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not CORE_TABLES <= tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise NotOurDatabase(f"{db_path}: is not a crm-desktop database (it has the tables {shown}); "
                                 f"crm-desktop will not add its tables to another program's database: "
                                 f"move it away or use another --home")
        if thorough and tables:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if rows != ["ok"]:
                raise DatabaseDamaged(f"{db_path}: the database is damaged ({'; '.join(rows)[:200]}); "
                                      f"nothing was written; {RECOVER_HINT}")
    except sqlite3.Error as exc:
        raise explain(exc, db_path) or DatabaseError(f"{db_path}: cannot read the database: {exc}") from None
    finally:
        conn.close()


def lock_wait_seconds(default: float = 10.0) -> float:
    """How long a writer waits for another process's write lock: ``CRM_DESKTOP_LOCK_WAIT`` seconds."""
    try:
        return max(0.0, float(os.environ.get("CRM_DESKTOP_LOCK_WAIT", default)))
    except ValueError:
        return default
