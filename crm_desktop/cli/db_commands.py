"""``crm-desktop db upgrade | check | backup PATH | recover``."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from crm_desktop.cli.common import home_of
from crm_desktop.errors import DatabaseError
from crm_desktop.files import OutputError, atomic_output
from crm_desktop.storage import migrate


def register(registry) -> None:
    db = registry.group("db", "database maintenance")
    db.command("upgrade", "back up and migrate the database to this version", _upgrade)
    db.command("check", "check the database's integrity and schema version", _check)
    db.command("recover", "rebuild a damaged database from the last good backup plus every readable row "
                          "(the damaged file is kept)", _recover)
    backup = db.command("backup", "write a consistent copy of the database", _backup)
    backup.add_argument("path", help="file to write (must not exist, unless --force)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")


def _upgrade(args: argparse.Namespace) -> int:
    home = home_of(args).ensure()
    backup = migrate.upgrade(home.db_path, home.backups_dir)
    print(f"database {home.db_path} is at the latest schema" + (f" (backup: {backup})" if backup else ""))
    return 0


def _check(args: argparse.Namespace) -> int:
    from crm_desktop.storage.health import DatabaseDamaged, check_database_file

    home = home_of(args)
    if not home.db_path.exists():
        raise DatabaseError(f"no database at {home.db_path}")
    try:
        check_database_file(home.db_path, thorough=False)  # a file that is not ours, unreadable or locked
    except DatabaseDamaged:
        pass  # the full check below lists what is wrong
    notes: list[str] = []
    problems = migrate.integrity_problems(home.db_path, notes)
    if problems:
        for problem in problems:
            print(f"problem: {problem}")
        raise DatabaseError(f"{home.db_path} is damaged: it failed the integrity check ({len(problems)} "
                            f"problem(s)); run `crm-desktop db recover`")
    migrate.check_not_newer(home.db_path, home.backups_dir)  # "newer than this app", not "needs db upgrade"
    current = migrate.is_current(home.db_path)
    revision = migrate.current_revision(home.db_path)
    for note in notes:
        print(f"note: {note}")
    print(f"ok: {home.db_path} (schema {revision}{'' if current else ', needs db upgrade'})")
    return 0 if current else 1


def _backup(args: argparse.Namespace) -> int:
    home = home_of(args)
    target = Path(args.path)
    if not home.db_path.exists():
        raise DatabaseError(f"no database at {home.db_path}")
    # a new file may go into backups/ (recover looks there), but no backup is ever replaced
    protected = [p for p in home.owned_paths() if p != home.backups_dir]
    protected += sorted(home.backups_dir.glob("*")) if home.backups_dir.is_dir() else []
    with atomic_output(target, force=args.force, protected=protected, open_file=False) as tmp:
        try:
            migrate.copy_database(home.db_path, tmp)
        except sqlite3.Error as exc:
            from crm_desktop.storage.health import error_kind

            if error_kind(exc) == "locked":
                raise
            raise OutputError(target, f"writing failed ({exc}: disk full, file size limit or no "
                                      f"permission); nothing was written") from None
    print(f"backed up {home.db_path} to {target}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from crm_desktop.storage.recovery import recover

    home = home_of(args)
    result = recover(home.db_path, home.backups_dir)
    print(result.describe())
    return 0
