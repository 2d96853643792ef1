"""``crm-desktop db recover``: a way out of a damaged database that loses as little as possible.

1. The newest backup in ``<home>/backups`` that passes the integrity check is copied into a
   new file beside the database (a fresh, empty schema if there is no good backup) and
   migrated to the current schema.
2. Every row that can still be read from the damaged file is copied over it (newer rows
   replace their backed-up versions); unreadable pages are skipped and counted.
3. The search index is rebuilt and the new file checked.
4. Only then the damaged file (with its ``-wal``/``-shm``) is renamed, byte for byte
   untouched, to ``crm.sqlite3.damaged-<time>``, and the new file takes its name.

If any step fails, the damaged file is left exactly where and as it was.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from crm_desktop.errors import DatabaseError
from crm_desktop.storage import fts, migrate
from crm_desktop.storage.health import CORE_TABLES, check_database_file

log = logging.getLogger(__name__)

_SKIP_TABLES = ("sqlite_", "alembic_version")


@dataclass
class RecoveryResult:
    backup: Path | None
    damaged_copy: Path
    rows_salvaged: dict[str, int] = field(default_factory=dict)
    rows_lost_ranges: int = 0
    dangling_fixed: int = 0

    def describe(self) -> str:
        source = f"the backup {self.backup.name}" if self.backup else "an empty database (no good backup found)"
        salvaged = sum(self.rows_salvaged.values())
        lost = f"; {self.rows_lost_ranges} unreadable part(s) skipped" if self.rows_lost_ranges else ""
        if self.dangling_fixed:
            lost += f"; {self.dangling_fixed} link(s) to lost records cleared"
        return (f"recovered from {source} plus {salvaged} row(s) read from the damaged file{lost}; "
                f"the damaged file is kept as {self.damaged_copy}")


def _is_good(path: Path) -> bool:
    try:
        check_database_file(path)
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return CORE_TABLES <= tables and conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
    except (DatabaseError, sqlite3.Error, OSError):
        return False


def good_backups(backups_dir: Path) -> list[Path]:
    """Backups that pass the integrity check, newest first."""
    try:
        found = sorted(Path(backups_dir).glob("*.sqlite3"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return [p for p in found if _is_good(p)]


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")')]


def _salvage_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str,
                   columns: list[str]) -> tuple[int, int]:
    """Copy the readable rows of ``table`` from ``src`` (damaged) into ``dst``; (rows, skipped parts).

    Two connections: after SQLite meets a damaged page it may refuse further statements on
    that connection, which must not stop the writes."""
    cols = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT OR REPLACE INTO "{table}" (rowid, {cols}) VALUES ({", ".join("?" * (len(columns) + 1))})'
    select = f'SELECT rowid, {cols} FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT 200'
    last, copied, skipped, step = -(2 ** 63), 0, 0, 1
    while True:
        try:
            rows = src.execute(select, (last,)).fetchall()
        except sqlite3.DatabaseError:
            # a damaged page: jump ahead further each time until a readable row turns up
            skipped += 1 if step == 1 else 0
            if last + step >= 2 ** 63 - 1 or step > 2 ** 62:
                break
            last, step = last + step, step * 2
            continue
        if not rows:
            break
        step = 1
        for row in rows:
            try:
                dst.execute(insert, row)
                copied += 1
            except sqlite3.DatabaseError as exc:
                log.warning("recover: %s row %s not copied: %s", table, row[0], exc)
        last = rows[-1][0]
    return copied, skipped


def _fix_dangling_references(conn: sqlite3.Connection) -> int:
    """Rows that point at a record that was lost: clear a nullable link, drop the row otherwise."""
    fixed = 0
    for _ in range(5):  # dropping a row can leave others dangling
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if not violations:
            break
        for table, rowid, _parent, fkid in violations:
            fk = [r for r in conn.execute(f'PRAGMA foreign_key_list("{table}")') if r[0] == fkid]
            notnull = {r[1]: r[3] for r in conn.execute(f'PRAGMA table_info("{table}")')}
            columns = [r[3] for r in fk]
            if columns and not any(notnull.get(c) for c in columns):
                conn.execute(f'UPDATE "{table}" SET {", ".join(f"{c!r} = NULL" for c in columns)} '
                             f"WHERE rowid = ?", (rowid,))
            else:
                conn.execute(f'DELETE FROM "{table}" WHERE rowid = ?', (rowid,))
            fixed += 1
    return fixed


def recover(db_path: Path, backups_dir: Path) -> RecoveryResult:
    """Recover ``db_path`` (see the module docstring); raises :class:`DatabaseError` if it is not damaged."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise DatabaseError(f"no database at {db_path}; nothing to recover")
    if _is_good(db_path):
        raise DatabaseError(f"{db_path} is not damaged (it passes the integrity check); nothing to recover")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    new = db_path.with_name(f".{db_path.name}.recovering-{stamp}")
    damaged_copy = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    backups = good_backups(backups_dir)
    backup = backups[0] if backups else None
    try:
        if backup is not None:
            migrate.copy_database(backup, new)
        migrate.upgrade(new, Path(backups_dir))  # a fresh schema, or an old backup brought up to date
        result = RecoveryResult(backup=backup, damaged_copy=damaged_copy)
        conn = sqlite3.connect(new, isolation_level=None)
        src = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA foreign_keys=OFF")
            try:
                tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()]
            except sqlite3.DatabaseError as exc:
                log.warning("recover: the damaged file's schema is unreadable (%s); nothing salvaged", exc)
                tables = []
            ours = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            fts_tables = {spec.fts_table for spec in fts.V1}
            conn.execute("BEGIN")
            for table in tables:
                if table.startswith(_SKIP_TABLES) or table not in ours or \
                        any(table == t or table.startswith(t + "_") for t in fts_tables):
                    continue
                try:
                    columns = [c for c in _columns(src, "main", table) if c in _columns(conn, "main", table)]
                except sqlite3.DatabaseError:
                    continue
                copied, skipped = _salvage_table(src, conn, table, columns)
                result.rows_salvaged[table] = copied
                result.rows_lost_ranges += skipped
            result.dangling_fixed = _fix_dangling_references(conn)
            for statement in fts.rebuild_sql(tuple(s for s in fts.V1 if s.fts_table in ours)):
                conn.execute(statement)
            conn.execute("COMMIT")
        finally:
            src.close()
            conn.close()
        problems = migrate.integrity_problems(new)
        if problems:
            raise DatabaseError(f"the recovered database failed its check: {'; '.join(problems[:3])}")
        # the damaged file keeps its bytes, under a new name; then the new file takes its place
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(db_path) + suffix)
            if source.exists():
                os.replace(source, Path(str(damaged_copy) + suffix))
        os.replace(new, db_path)
    except BaseException:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(new) + suffix).unlink(missing_ok=True)
        raise
    for suffix in ("-wal", "-shm"):
        Path(str(new) + suffix).unlink(missing_ok=True)
    log.info("recovered %s: %s", db_path, result.describe())
    return result
