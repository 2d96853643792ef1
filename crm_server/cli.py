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

from crm_server import activity, admin, devices, health
from crm_server.db import DB_ENV, Database, default_db_url, migrate
from crm_server.errors import ServerError
from crm_server.health import WORKERS_ENV

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
    os.environ[WORKERS_ENV] = str(args.workers)  # for the console's Health page, in every worker
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


def cmd_user_reset_password(args) -> int:
    db = _db(args)
    with db.write() as session:
        password = admin.reset_password(session, args.name)
    print(f"temporary password for {args.name} (shown once): {password}")
    return 0


def cmd_device_list(args) -> int:
    db = _db(args)
    with db.read() as session:
        rows = devices.list_devices(session)
    if not rows:
        print("no devices: they appear after their first 'crm-desktop login'")
    for d in rows:
        state = "signed in" if d.signed_in else "signed out"
        last = d.last_sync_at.strftime("%Y-%m-%d %H:%M") if d.last_sync_at else "never"
        print(f"{d.id}  {d.username:<16} {d.name or '-':<24} app {d.app_version or '?':<8} last sync {last:<16} "
              f"pending {'-' if d.pending_reported is None else d.pending_reported:<5} rejected {d.rejected_total:<5} "
              f"{state}")
    return 0


def cmd_device_revoke(args) -> int:
    db = _db(args)
    with db.write() as session:
        name = devices.revoke_device(session, args.device, "revoked by an admin (crm-server device revoke)")
    print(f"revoked {name}")
    return 0


def cmd_plugin_publish(args) -> int:
    db = _db(args)
    with db.write() as session:
        result = admin.publish_plugin(session, args.bundle, args.sig)
    for warning in result.warnings:
        print(f"note: {warning}")
    rolled = f" (rolled forward from {result.previous_version})" if result.previous_version else ""
    print(f"published {result.name} {result.version}{rolled}")
    return 0


def cmd_plugin_list(args) -> int:
    db = _db(args)
    with db.read() as session:
        rows = admin.list_plugins(session)
        policy = admin.plugin_policy(session)
    if not rows:
        print("no plugins published: publish one with 'crm-server plugin publish BUNDLE'")
    for r in rows:
        state = "withdrawn" if r.withdrawn_at else "published"
        print(f"{r.name:<24} {r.version:<10} {state:<10} key {r.key_id or '-'}")
    allowed = ", ".join(policy.allowed) if policy.allowed is not None else "every plugin not blocked"
    print(f"policy: allowed {allowed}; blocked {', '.join(policy.blocked) or 'none'}; "
          f"required {', '.join(policy.required) or 'none'}")
    return 0


def cmd_plugin_policy(args) -> int:
    db = _db(args)
    with db.write() as session:
        current = admin.plugin_policy(session)
        allowed = current.allowed
        if args.allow_all:
            allowed = None
        elif args.allow is not None:
            allowed = _teams(args.allow)
        policy = admin.set_plugin_policy(
            session, allowed=allowed,
            blocked=_teams(args.block) if args.block is not None else list(current.blocked),
            required=_teams(args.require) if args.require is not None else list(current.required))
    allowed_text = ", ".join(policy.allowed) if policy.allowed is not None else "every plugin not blocked"
    print(f"policy: allowed {allowed_text}; blocked {', '.join(policy.blocked) or 'none'}; "
          f"required {', '.join(policy.required) or 'none'}")
    return 0


def cmd_activity_export(args) -> int:
    flt = activity.ActivityFilter.parse({"user": args.user or "", "device": args.device or "",
                                         "actor": args.actor or "", "entity": args.entity or "",
                                         "status": args.status or "", "since": args.since or "",
                                         "until": args.until or ""})
    db = _db(args)
    with db.read() as session:
        rows = activity.export_rows(session, flt)
        names = activity.device_names(session)
    if args.out == "-":
        count = activity.write_csv(sys.stdout, rows, names)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            count = activity.write_csv(out, rows, names)
        print(f"wrote {count} row{'s' if count != 1 else ''} to {args.out}")
    return 0


def cmd_health(args) -> int:
    db = _db(args)
    h = health.health(db)
    print(f"database        {h.database_kind}, {health.human_size(h.database_size_bytes)}")
    print(f"change log      {h.change_log_rows} rows, newest cursor {h.newest_cursor}")
    held = f" (held by {h.oldest_cursor_device})" if h.oldest_cursor_device else ""
    print(f"oldest cursor   {h.oldest_cursor_in_use or 'none in use'}{held}")
    print(f"devices         {h.devices_signed_in} signed in, {h.users} users")
    print(f"protocol        {h.protocol_version}")
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
    command(user, "reset-password", "give a user a temporary password, printed once",
            cmd_user_reset_password).add_argument("name")

    device = sub.add_parser("device", help="signed-in devices").add_subparsers(
        dest="device_command", required=True, parser_class=_Parser)
    command(device, "list", "list devices with what they last reported", cmd_device_list)
    command(device, "revoke", "sign a device out (its refresh token dies)", cmd_device_revoke).add_argument("device")

    act = sub.add_parser("activity", help="the audit of pushes").add_subparsers(
        dest="activity_command", required=True, parser_class=_Parser)
    export = command(act, "export", "write the push audit as CSV (formula cells neutralised)", cmd_activity_export)
    export.add_argument("out", help="a file, or - for standard output")
    for flag in ("user", "device", "actor", "entity", "status"):
        export.add_argument(f"--{flag}")
    export.add_argument("--since", help="first day, YYYY-MM-DD")
    export.add_argument("--until", help="last day, YYYY-MM-DD")

    command(sub, "health", "database, change log, oldest cursor in use, protocol", cmd_health)

    team = sub.add_parser("team", help="teams").add_subparsers(dest="team_command", required=True, parser_class=_Parser)
    command(team, "add", "add a team", cmd_team_add).add_argument("name")

    plugin = sub.add_parser("plugin", help="published plugin bundles").add_subparsers(
        dest="plugin_command", required=True, parser_class=_Parser)
    command(plugin, "trust", "trust a signing key (ed25519:... or a .pub file) for publishing",
            cmd_plugin_trust).add_argument("key")
    publish = command(plugin, "publish", "verify BUNDLE and BUNDLE.sig against the trusted keys and publish it "
                                         "(a higher version rolls forward)", cmd_plugin_publish)
    publish.add_argument("bundle")
    publish.add_argument("--sig", help="the signature file (default BUNDLE.sig)")
    command(plugin, "withdraw", "stop offering a plugin to clients", cmd_plugin_withdraw).add_argument("name")
    command(plugin, "list", "published plugins and the organisation's plugin policy", cmd_plugin_list)
    pol = command(plugin, "policy", "change the organisation's plugin policy (clients apply it on sync)",
                  cmd_plugin_policy)
    pol.add_argument("--allow", action="append", help="only these plugins may run (repeat or comma-separate)")
    pol.add_argument("--allow-all", action="store_true", help="drop the allowed list: every plugin not blocked")
    pol.add_argument("--block", action="append", help="these plugins never run (replaces the list; '' empties it)")
    pol.add_argument("--require", action="append", help="every device installs these (replaces the list)")
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
