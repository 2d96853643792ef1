"""``crm-desktop login | logout | sync [--json] | sync status [--json]``."""

from __future__ import annotations

import argparse
import getpass
import sys

from crm_desktop.cli.terminal import for_terminal
from crm_desktop.cli.common import open_core, print_json
from crm_desktop.errors import CrmError


def register(registry) -> None:
    login = registry.command("login", "sign in to the sync server (the token is kept in the OS keyring)", cmd_login)
    login.add_argument("--server", required=True, metavar="URL", help="e.g. https://crm.example.com")
    login.add_argument("--user", required=True, metavar="NAME")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    registry.command("logout", "sign out of the sync server and forget the token", cmd_logout)
    sync = registry.command("sync", "push local changes, then pull the server's (or: sync status)", cmd_sync)
    sync.add_argument("what", nargs="?", choices=["status"], help="status: pending changes, last sync, "
                                                                  "conflicts and problems")
    sync.add_argument("--json", action="store_true", dest="as_json", help="print JSON")
    sync.add_argument("--retries", type=int, default=3, help=argparse.SUPPRESS)


def _password(args) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.user}: ")
    if not password:
        raise CrmError("no password given")
    return password


def cmd_login(args) -> int:
    from crm_desktop.sync.service import SyncService
    from crm_desktop.sync.state import normalize_server_url, check_binding

    password = _password(args)
    with open_core(args) as core:
        service = SyncService(core.db)
        check_binding(service.account(), normalize_server_url(args.server), args.user)  # before any network
        account = service.login(args.server, args.user, password)
    teams = f", team {', '.join(account.teams)}" if account.teams else ""
    print(f"signed in to {account.server_url} as {account.username} ({account.role}{teams})")
    return 0


def cmd_logout(args) -> int:
    from crm_desktop.sync.service import SyncService

    with open_core(args) as core:
        signed_out = SyncService(core.db).logout()
    print("signed out" if signed_out else "not signed in")
    return 0


def cmd_sync(args) -> int:
    from crm_desktop.sync.service import SyncService

    with open_core(args) as core:
        from crm_desktop.plugin_host.distribution import PluginSync

        service = SyncService(core.db, home=core.home, plugin_sync=PluginSync, events=core.events)
        if args.what == "status":
            status = service.status()
            if args.as_json:
                print_json(status)
            else:
                _print_status(status)
            return 0
        report = service.sync(attempts=max(1, args.retries))
        status = service.status()
    out = {"pushed": report.pushed, "pulled": report.pulled, "conflicts": report.conflicts,
           "rejected": report.rejected, "errors": report.errors, "offline": report.offline,
           "pending": status["pending"], "open_conflicts": status["conflicts"], "problems": status["problems"],
           "plugins": report.plugins or {"installed": [], "updated": [], "removed": [], "refused": [],
                                         "unchanged": [], "errors": []}}
    if args.as_json:
        print_json(out)
    else:
        line = (f"pushed {report.pushed}, pulled {report.pulled}, conflicts {report.conflicts}, "
                f"rejected {report.rejected}, errors {len(report.errors)}")
        print(line)
        if report.offline:
            print(f"offline: {for_terminal(report.errors[0])}; your changes are kept and will be sent next time")
        else:
            for error in report.errors:
                print(f"error: {for_terminal(error)}")
        _print_plugins(report.plugins)
        if status["conflicts"] or status["problems"]:
            print(f"{status['conflicts']} conflict(s) and {status['problems']} sync problem(s) need you: "
                  "open the app (Sync menu)")
    return 0 if report.ok else 1


def _print_plugins(plugins: dict) -> None:
    for entry in plugins.get("installed", []):
        print(f"plugin installed: {entry['name']} {entry['version']}")
    for entry in plugins.get("updated", []):
        print(f"plugin updated: {entry['name']} {entry['previous']} -> {entry['version']}")
    for entry in plugins.get("removed", []):
        print(f"plugin removed: {entry['name']} (withdrawn by the admin; its data is kept)")
    for entry in plugins.get("refused", []):
        print(f"plugin refused: {entry['name']} {entry['version']}: {for_terminal(entry['reason'])}")
    for error in plugins.get("errors", []):
        print(f"plugin error: {for_terminal(error)}")


def _print_status(status: dict) -> None:
    if status["server"]:
        print(f"server:      {status['server']} as {status['user']}")
    else:
        print("server:      not signed in (crm-desktop login --server URL --user NAME)")
    print(f"pending:     {status['pending']} change(s) to send")
    print(f"last sync:   {status['last_success'] or 'never'}"
          + (" (the last attempt was offline)" if status["offline"] else ""))
    print(f"conflicts:   {status['conflicts']}")
    print(f"problems:    {status['problems']}")
