"""Open a database safely: back up, migrate, check, restore on failure.

The order on start (DESIGN.md, Data):

1. refuse a database whose revision is newer than this code knows;
2. if a migration is due, copy the database with the SQLite backup API;
3. run alembic ``upgrade head``;
4. run ``PRAGMA integrity_check`` (and FTS5 integrity checks);
5. if any step fails, put the backup back and raise :class:`DatabaseError`.

A plugin's tables are migrated differently (:func:`upgrade_in_one_transaction`):
the app may be running and editing the core meanwhile, so putting a whole-file
backup back would lose those edits. SQLite DDL is transactional, so all of a
plugin's pending revisions run in one transaction, and a failure rolls back
only that.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import re
from typing import TYPE_CHECKING

from crm_desktop.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

# alembic (and the mako templates it pulls in) takes a third of a second to import: a command
# such as ``import`` on a database that is current only needs the head revision, read below
_REVISION = re.compile(r"^revision\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(None|['\"]([^'\"]+)['\"])\s*$", re.M)
from crm_desktop.storage import fts

log = logging.getLogger(__name__)

CORE_VERSION_TABLE = "alembic_version"
KEEP_BACKUPS = 5


def core_script_location() -> Path:
    """The core ``migrations/`` folder (:func:`crm_desktop.paths.shipped_dir`: checkout or frozen build)."""
    from crm_desktop.paths import shipped_dir

    folder = shipped_dir("migrations")
    if folder is None or not (folder / "env.py").is_file():
        raise DatabaseError(f"the core migrations folder is missing from this installation ({folder or 'not found'})")
    return folder


def alembic_config(script_location: Path, version_table: str = CORE_VERSION_TABLE) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    return config


def current_revision(db_path: Path, version_table: str = CORE_VERSION_TABLE) -> str | None:
    """The revision stamped in the database, or None for a new/empty one."""
    if not db_path.exists():
        return None
    conn = sqlite3.connect(db_path)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (version_table,)
        ).fetchone()
        if not exists:
            return None
        row = conn.execute(f"SELECT version_num FROM {version_table}").fetchone()
        return row[0] if row else None
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{db_path} is not a crm-desktop database: {exc}") from exc
    finally:
        conn.close()


def backup_database(db_path: Path, target: Path) -> Path:
    """Copy a live database with the SQLite online backup API (consistent under WAL)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    try:
        copy_database(db_path, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave half a backup behind
        raise
    return target


def copy_database(db_path: Path, target: Path) -> None:
    """Copy ``db_path`` into the (new or empty) file ``target`` with the SQLite backup API."""
    src = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def restore_database(backup: Path, db_path: Path) -> None:
    """Write a backup back over the database (through SQLite, so WAL state stays coherent)."""
    src = sqlite3.connect(backup)
    dst = sqlite3.connect(db_path)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def integrity_problems(db_path: Path, notes: list[str] | None = None) -> list[str]:
    """Everything ``PRAGMA integrity_check``, foreign keys and FTS5 find wrong; empty if sound.

    Only damage counts as a problem. A database that is locked by another process or
    cannot be opened raises :class:`~crm_desktop.storage.health.DatabaseLocked` /
    ``DatabaseUnwritable`` instead; checks that need the write lock (the FTS5 index check)
    are skipped when it is not available, with a line in ``notes`` saying why."""
    from crm_desktop.storage.health import error_kind, explain

    problems: list[str] = []
    try:
        conn = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as exc:
        raise explain(exc, db_path) or DatabaseError(f"{db_path}: cannot open: {exc}") from None
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        if rows != ["ok"]:
            problems.extend(rows)
        for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check").fetchall()[:20]:
            problems.append(f"{table} row {rowid} points to a missing {parent}")
        existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        if error_kind(exc) != "damaged":
            raise explain(exc, db_path) or DatabaseError(f"{db_path}: cannot check: {exc}") from None
        return problems + [str(exc)]
    finally:
        conn.close()
    specs = [spec for spec in fts.V1 if spec.fts_table in existing]
    if not specs:
        return problems
    # 'integrity-check' is written as an INSERT: it needs a writable connection and the write lock
    conn = sqlite3.connect(db_path, timeout=0.5, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for spec in specs:
            try:
                conn.execute(f"INSERT INTO {spec.fts_table}({spec.fts_table}) VALUES('integrity-check')")
            except sqlite3.Error as exc:
                kind = error_kind(exc)
                if kind in ("locked", "unwritable", "full"):
                    if notes is not None:
                        why = ("another crm-desktop process is writing" if kind == "locked"
                               else "the database is read-only here")
                        notes.append(f"search index not checked: {why}")
                    break
                problems.append(f"search index {spec.fts_table}: {exc}")
    except sqlite3.Error as exc:
        if error_kind(exc) == "damaged":
            problems.append(str(exc))
        elif notes is not None:
            notes.append(f"search index not checked: {exc}")
    finally:
        try:
            conn.rollback() if conn.in_transaction else None
        finally:
            conn.close()
    return problems


def _prune_backups(folder: Path, stem: str) -> None:
    backups = sorted(folder.glob(f"{stem}-*.sqlite3"))
    for old in backups[:-KEEP_BACKUPS]:
        old.unlink(missing_ok=True)


def upgrade(
    db_path: Path,
    backups_dir: Path,
    *,
    script_location: Path | None = None,
    version_table: str = CORE_VERSION_TABLE,
    label: str = "core",
) -> str | None:
    """Bring ``db_path`` to the head revision of ``script_location``.

    Returns the backup written (None when nothing was due or the file was new).
    Raises :class:`DatabaseError` naming the problem; the database is then as it was.
    """
    if version_table == CORE_VERSION_TABLE:
        from crm_desktop.storage.health import check_database_file

        check_database_file(db_path)  # never migrate another program's file or a damaged one
    script_location = script_location or core_script_location()
    current = current_revision(db_path, version_table)
    if current is not None and current == simple_head(script_location):
        return None
    from alembic.script import ScriptDirectory
    from alembic import command

    config = alembic_config(script_location, version_table)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    if current is not None and not _known(script, current):
        raise newer_than_app(db_path, current, head, backups_dir, label)
    if current == head:
        return None

    is_new = not db_path.exists() or db_path.stat().st_size == 0
    backup: Path | None = None
    if not is_new:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = backup_database(db_path, backups_dir / f"{db_path.stem}-{stamp}-before-{label}-{head}.sqlite3")
    log.info("migrating %s (%s) from %s to %s", db_path, label, current, head)
    from crm_desktop.storage.engine import make_engine

    engine = make_engine(db_path, immediate=True)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        engine.dispose()
        problems = integrity_problems(db_path)
        if problems:
            raise DatabaseError("integrity check failed after migration: " + "; ".join(problems[:5]))
    except Exception as exc:
        engine.dispose()
        if backup is not None:
            restore_database(backup, db_path)
            log.error("migration failed, restored %s from %s", db_path, backup)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(str(db_path) + suffix).unlink(missing_ok=True)
        if isinstance(exc, DatabaseError):
            raise
        raise DatabaseError(f"migrating {db_path} ({label}) to {head} failed and was undone: {exc}") from exc
    if backup is not None:
        _prune_backups(backups_dir, db_path.stem)
    return str(backup) if backup else None


def upgrade_in_one_transaction(
    db_path: Path,
    *,
    script_location: Path,
    version_table: str,
    label: str,
    check: Callable[[Any], None] | None = None,
) -> bool:
    """Bring ``version_table``'s schema (a plugin's) to the head of ``script_location`` in ONE
    write transaction; ``check(connection)`` runs before the commit and may raise to refuse.

    Returns True if revisions ran. On any failure the transaction is rolled back (every revision,
    the version table, whatever ``check`` refused) and :class:`DatabaseError` is raised; the rest
    of the database, including edits committed by the running app meanwhile, is untouched.
    """
    from alembic.script import ScriptDirectory
    from alembic import command

    config = alembic_config(script_location, version_table)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    current = current_revision(db_path, version_table)
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:
            raise DatabaseError(f"{db_path} has {label} schema revision {current}, newer than this app knows "
                                f"(latest {head})") from None
    if current == head:
        return False
    log.info("migrating %s (%s) from %s to %s in one transaction", db_path, label, current, head)
    from crm_desktop.storage.engine import make_engine

    engine = make_engine(db_path, immediate=True)
    try:
        with engine.connect() as connection:
            # BEGIN IMMEDIATE before alembic starts: it then runs inside this transaction and does
            # not commit per revision (as it otherwise does on SQLite)
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if check is not None:
                    check(connection)
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()[:5]
                if problems:
                    raise DatabaseError("foreign key check failed: " + "; ".join(
                        f"{table} row {rowid} points to a missing {parent}" for table, rowid, parent, _ in problems))
    except Exception as exc:
        raise DatabaseError(f"migrating {label} to {head} failed and was rolled back: {exc}") from exc
    finally:
        engine.dispose()
    return True


def _known(script, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


def newer_than_app(db_path: Path, current: str, head: str | None, backups_dir: Path,
                   label: str = "core") -> DatabaseError:
    """The one message for a database a newer crm-desktop has migrated (``db upgrade``, ``db check``)."""
    return DatabaseError(f"{db_path} has {label} schema revision {current}, newer than this app knows "
                         f"(latest {head}): use a newer crm-desktop, or restore a backup from {backups_dir}")


def check_not_newer(db_path: Path, backups_dir: Path, script_location: Path | None = None,
                    version_table: str = CORE_VERSION_TABLE, label: str = "core") -> None:
    """Raise :func:`newer_than_app`'s error when ``db_path``'s revision is unknown to this app."""
    script_location = script_location or core_script_location()
    current = current_revision(db_path, version_table)
    if current is None or current == simple_head(script_location):
        return
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(script_location, version_table))
    if not _known(script, current):
        raise newer_than_app(db_path, current, script.get_current_head(), backups_dir, label)


def is_current(db_path: Path, script_location: Path | None = None,
               version_table: str = CORE_VERSION_TABLE) -> bool:
    script_location = script_location or core_script_location()
    current = current_revision(db_path, version_table)
    if current is not None and current == simple_head(script_location):
        return True
    from alembic.script import ScriptDirectory

    config = alembic_config(script_location, version_table)
    return current == ScriptDirectory.from_config(config).get_current_head()


def simple_head(script_location: Path) -> str | None:
    """The head revision of a plain linear script folder, read from its files without alembic; None
    when the folder is not that simple (branches, merges, unusual files): then ask alembic."""
    revisions: dict[str, str | None] = {}
    try:
        for path in (script_location / "versions").glob("*.py"):
            text = path.read_text(encoding="utf-8")
            rev, down = _REVISION.search(text), _DOWN.search(text)
            if rev is None or down is None or rev.group(1) in revisions:
                return None
            revisions[rev.group(1)] = down.group(2)
    except OSError:
        return None
    heads = set(revisions) - set(revisions.values())
    return next(iter(heads)) if len(heads) == 1 else None
