"""``crm-server``: run the sync server and administer it (DESIGN.md, Command line).

Every subcommand takes ``--db URL`` (PostgreSQL ``postgresql://...`` or SQLite
``sqlite:///FILE``; default ``$CRM_SERVER_DB`` or a file in the user data folder).
Bad input prints one line ``crm-server: error: ...`` and exits non-zero, having
changed nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

from sqlalchemy.exc import DBAPIError, OperationalError

from crm_server import admin
from crm_server.db import DB_ENV, Database, default_db_url, migrate
from crm_server.errors import ServerError

PROG = "crm-server"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _db(args) -> Database:
    db = Database(args.db or default_db_url())
    migrate(db)
    return db


def _password_from_stdin(args) -> str:
    if not args.password_stdin:
        raise ServerError("give the password on standard input with --password-stdin (it is never an argument)")
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ServerError("no password on standard input")
    return password


def _teams(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [t.strip() for item in value for t in item.split(",") if t.strip()]


def cmd_run(args) -> int:
    import uvicorn

    url = args.db or default_db_url()
    db = Database(url)
    migrate(db)  # once, before the workers start
    db.dispose()
    print(f"crm-server: serving {_safe(db.url)} on http://{args.host}:{args.port} "
          f"({args.workers} worker{'s' if args.workers != 1 else ''})", flush=True)
    if args.workers > 1:
        os.environ[DB_ENV] = url
        uvicorn.run("crm_server.app:app_from_environment", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, proxy_headers=True, timeout_graceful_shutdown=5)
    else:
        from crm_server.app import create_app
        uvicorn.run(create_app(url, run_migrations=False), host=args.host, port=args.port,
                    log_level=args.log_level, proxy_headers=True, timeout_graceful_shutdown=5)
    return 0


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def cmd_user_add(args) -> int:
    password = _password_from_stdin(args)
    db = _db(args)
    with db.write() as session:
        admin.add_user(session, args.name, args.role, _teams(args.team) or [], password, args.display_name)
    print(f"added user {args.name} ({args.role})")
    return 0


def cmd_user_list(args) -> int:
    db = _db(args)
    with db.read() as session:
        rows = admin.list_users(session)
    if not rows:
        print("no users: add one with 'crm-server user add NAME --role admin --password-stdin'")
    for row in rows:
        state = "  disabled" if row.disabled else ""
        print(f"{row.username:<24} {row.role:<8} {','.join(row.teams) or '-'}{state}")
    return 0


def cmd_user_set(args) -> int:
    if args.disable and args.enable:
        raise ServerError("--disable and --enable contradict each other")
    password = _password_from_stdin(args) if args.password_stdin else None
    disabled = True if args.disable else False if args.enable else None
    teams = _teams(args.team)
    if args.role is None and teams is None and disabled is None and password is None:
        raise ServerError("nothing to change: give --role, --team, --disable, --enable or --password-stdin")
    db = _db(args)
    with db.write() as session:
        admin.set_user(session, args.name, role=args.role, teams=teams, disabled=disabled, password=password)
    print(f"updated user {args.name}")
    return 0


def cmd_team_add(args) -> int:
    db = _db(args)
    with db.write() as session:
        admin.add_team(session, args.name)
    print(f"added team {args.name}")
    return 0


def cmd_plugin_trust(args) -> int:
    db = _db(args)
    with db.write() as session:
        key = admin.trust_key(session, args.key)
    print(f"trusted {key}")
    return 0


def cmd_plugin_publish(args) -> int:
    db = _db(args)
    with db.write() as session:
        name, version = admin.publish_plugin(session, args.bundle)
    print(f"published {name} {version}")
    return 0


def cmd_plugin_withdraw(args) -> int:
    db = _db(args)
    with db.write() as session:
        admin.withdraw_plugin(session, args.name)
    print(f"withdrew {args.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    db_help = f"database URL (default ${DB_ENV} or a SQLite file)"
    # SUPPRESS: a --db given before the subcommand is not overwritten by the subcommand's default
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=db_help)
    parser = _Parser(prog=PROG, description="The crm-desktop sync server.")
    parser.add_argument("--db", metavar="URL", default=None, help=db_help)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(group, name: str, help: str, handler: Callable) -> argparse.ArgumentParser:
        cmd = group.add_parser(name, help=help, description=help, parents=[common])
        cmd.set_defaults(handler=handler)
        return cmd

    run = command(sub, "run", "serve the sync protocol over HTTP", cmd_run)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8765)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    user = sub.add_parser("user", help="users and their roles and teams").add_subparsers(
        dest="user_command", required=True, parser_class=_Parser)
    add = command(user, "add", "add a user (password on standard input)", cmd_user_add)
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=admin.ROLES)
    add.add_argument("--team", action="append", help="a team name; repeat or comma-separate for managers")
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true")
    command(user, "list", "list users", cmd_user_list)
    set_ = command(user, "set", "change a user's role, teams or state", cmd_user_set)
    set_.add_argument("name")
    set_.add_argument("--role", choices=admin.ROLES)
    set_.add_argument("--team", action="append", help="the user's teams from now on (replaces the old ones)")
    set_.add_argument("--disable", action="store_true", help="stop every device of the user at once")
    set_.add_argument("--enable", action="store_true")
    set_.add_argument("--password-stdin", action="store_true", help="set a new password read from standard input")

    team = sub.add_parser("team", help="teams").add_subparsers(dest="team_command", required=True, parser_class=_Parser)
    command(team, "add", "add a team", cmd_team_add).add_argument("name")

    plugin = sub.add_parser("plugin", help="published plugin bundles").add_subparsers(
        dest="plugin_command", required=True, parser_class=_Parser)
    command(plugin, "trust", "trust a signing key (ed25519:... or a .pub file) for publishing",
            cmd_plugin_trust).add_argument("key")
    command(plugin, "publish", "verify BUNDLE and BUNDLE.sig against the trusted keys and publish it",
            cmd_plugin_publish).add_argument("bundle")
    command(plugin, "withdraw", "stop offering a plugin to clients", cmd_plugin_withdraw).add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ServerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        print(f"{PROG}: error: the database cannot be used: {reason}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
