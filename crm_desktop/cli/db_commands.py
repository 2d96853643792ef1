"""``crm-desktop db upgrade | check | backup PATH``."""

from __future__ import annotations

import argparse
from pathlib import Path

from crm_desktop.cli.common import home_of
from crm_desktop.errors import DatabaseError
from crm_desktop.files import atomic_output
from crm_desktop.storage import migrate


def register(registry) -> None:
    db = registry.group("db", "database maintenance")
    db.command("upgrade", "back up and migrate the database to this version", _upgrade)
    db.command("check", "check the database's integrity and schema version", _check)
    backup = db.command("backup", "write a consistent copy of the database", _backup)
    backup.add_argument("path", help="file to write (must not exist, unless --force)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")


def _upgrade(args: argparse.Namespace) -> int:
    home = home_of(args).ensure()
    backup = migrate.upgrade(home.db_path, home.backups_dir)
    print(f"database {home.db_path} is at the latest schema" + (f" (backup: {backup})" if backup else ""))
    return 0


def _check(args: argparse.Namespace) -> int:
    home = home_of(args)
    if not home.db_path.exists():
        raise DatabaseError(f"no database at {home.db_path}")
    problems = migrate.integrity_problems(home.db_path)
    current = migrate.is_current(home.db_path)
    if problems:
        for problem in problems:
            print(f"problem: {problem}")
        raise DatabaseError(f"{home.db_path} failed the integrity check ({len(problems)} problems)")
    revision = migrate.current_revision(home.db_path)
    print(f"ok: {home.db_path} (schema {revision}{'' if current else ', needs db upgrade'})")
    return 0 if current else 1


def _backup(args: argparse.Namespace) -> int:
    home = home_of(args)
    target = Path(args.path)
    if not home.db_path.exists():
        raise DatabaseError(f"no database at {home.db_path}")
    with atomic_output(target, force=args.force, protected=home.owned_paths(), open_file=False) as tmp:
        migrate.copy_database(home.db_path, tmp)
    print(f"backed up {home.db_path} to {target}")
    return 0
