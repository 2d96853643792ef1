"""``crm-desktop plugin ...``: list, new, validate, check, enable/disable/reload, uninstall, config.

Also adds plugins' own subcommands (``crm_cli_commands``) as top-level
commands, ``crm-desktop <name> ...``, but only when the command line names a
command the core does not know: core commands never load a plugin, and a
broken plugin can at worst make its own command unavailable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from crm_desktop.cli.terminal import for_terminal
from crm_desktop.cli.common import home_of, print_json

#: Global options of ``crm-desktop`` that take a value (to find the command word in argv).
_VALUE_OPTIONS = {"--home", "--screenshot", "--view", "--size"}


def register(registry) -> None:
    group = registry.group("plugin", "manage and develop plugins")
    p = group.command("list", "list plugins and whether they load at start (no plugin code runs; "
                              "`plugin check NAME` loads one)", _list)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = group.command("new", "create a plugin from the template", _new)
    p.add_argument("name")
    p.add_argument("--dir", help="parent folder (default: <home>/plugins)")
    p = group.command("validate", "validate a plugin's plugin.json and run the static checks (no code runs)",
                      _validate)
    p.add_argument("target", metavar="NAME|PATH", help="an installed plugin's name, or a plugin folder")
    p = group.command("check", "load a plugin headless in a child process, build its panels, reload it and "
                               "look for leaks", _check)
    p.add_argument("target", metavar="NAME|PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the child's side
    for name, helptext, handler in (("enable", "enable a plugin", _enable), ("disable", "disable a plugin", _disable),
                                    ("reload", "reload a plugin from its folder", _reload)):
        group.command(name, helptext, handler).add_argument("name")
    p = group.command("uninstall", "remove a user plugin (its data stays unless --drop-data)", _uninstall)
    p.add_argument("name")
    p.add_argument("--drop-data", action="store_true", help="back up the database, then drop the plugin's tables")
    p = group.command("config", "show or set a plugin's settings: config NAME key=value ...", _config)
    p.add_argument("name")
    p.add_argument("assignments", nargs="*", metavar="key=value")


@contextmanager
def _host(args: argparse.Namespace, **kwargs) -> Iterator:
    """A started host that loads plugins (their code runs, each import/activate under the watchdog)."""
    from crm_desktop.core import Core
    from crm_desktop.plugin_host.host import PluginHost

    home = home_of(args)
    with Core.open(home) as core:
        host = PluginHost(core, home, **kwargs)
        try:
            host.start()
            yield host
        finally:
            host.stop()


@contextmanager
def _catalog(args: argparse.Namespace, *, database: bool = False) -> Iterator:
    """A host that only reads plugin folders, the policy and the state file: no plugin code runs
    and (unless ``database``) the database is not opened, so a hanging or crashing plugin, or
    another process writing, cannot stop ``list``, ``enable``, ``disable``, ``uninstall``, ``config``."""
    from types import SimpleNamespace

    from crm_desktop.core import Core
    from crm_desktop.plugin_host.host import PluginHost
    from crm_desktop.services.events import EventBus

    home = home_of(args).ensure()
    if database:
        with Core.open(home) as core:
            host = PluginHost(core, home, tripwire=False)
            host.start(load=False)
            yield host
        return
    host = PluginHost(SimpleNamespace(events=EventBus(), services=None, home=home), home, tripwire=False)
    host.start(load=False)
    yield host


def _summary(record) -> str:
    error = f" — {record.error.strip().splitlines()[0]}" if record.error else ""
    return f"{record.name} {record.version}: {record.state.value}{error}"


def _list(args: argparse.Namespace) -> int:
    with _catalog(args) as host:
        records = list(host.records.values())
        if args.json:
            print_json([r.to_json() for r in records])
            return 0
        if not records:
            print("no plugins")
        for r in records:
            print(for_terminal(f"{r.name:<24} {r.version:<10} {r.state.value:<12} {r.source:<8} {r.path}"))
            print(f"{'':<24} publisher: {for_terminal(r.publisher)}")
            if r.permissions:
                print(f"{'':<24} permissions: {for_terminal(', '.join(r.permissions))}")
            if r.error:
                print(f"{'':<24} {for_terminal(r.error.strip().splitlines()[0])}")
    return 0


def _new(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host.scaffold import scaffold

    parent = Path(args.dir) if args.dir else home_of(args).ensure().plugins_dir
    folder = scaffold(args.name, parent)
    print(f"created {folder}")
    print(f"next: crm-desktop plugin check {folder}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from crm_desktop.plugin_host.manifest import compatibility_problems, missing_python_dependencies, read_manifest
    from crm_desktop.plugin_host.policy import PolicyError, load_home_policy
    from crm_desktop.plugin_host.static_checks import ERROR, scan_plugin

    folder = _plugin_folder(args, args.target, "validate")
    manifest = read_manifest(folder)  # ManifestError -> one line, exit 2
    problems = compatibility_problems(manifest) + missing_python_dependencies(manifest)
    for problem in problems:
        print(f"warning: {problem}")
    try:
        policy = load_home_policy(home_of(args))
        strict, policy_note = policy.strict_static_checks, ""
        granted = {p for p in manifest.permissions if policy.permits(p)} | set(policy.grants_for(manifest.name))
    except PolicyError as exc:
        # fail closed, as the host does: an unreadable policy counts as strict and grants nothing
        strict, policy_note, granted = True, f" (the plugin policy is unreadable: {exc})", set(manifest.permissions)
    findings = scan_plugin(folder, granted=granted)
    for finding in findings:
        # file:line: severity: [rule] message (needs 'permission'); errors are warnings unless the policy is strict
        shown = finding if strict or finding.severity != ERROR else dataclasses.replace(finding, severity="warning")
        print(shown)
    errors = [f for f in findings if f.severity == ERROR]
    print(f"{manifest.name} {manifest.version}: plugin.json is valid")
    if errors and strict:
        print(f"{manifest.name}: {len(errors)} static check error(s); the policy has strictStaticChecks, "
              f"so it would be refused at install{policy_note}", file=sys.stderr)
        return 1
    if findings:
        print(f"{manifest.name}: {len(findings)} static check finding(s); shown for approval at install")
    return 0


def _looks_like_path(target: str) -> bool:
    return os.sep in target or (os.altsep or os.sep) in target or target.startswith(".") or target.startswith("~")


def _plugin_folder(args: argparse.Namespace, target: str, command: str) -> Path:
    """The folder of ``target``: a plugin folder path, or the name of a plugin the app finds (no code runs).

    A bad name or path is a :class:`CliError` in one line naming what was tried."""
    from crm_desktop.cli import CliError
    from crm_desktop.plugin_host import discovery
    from crm_desktop.plugin_host.policy import PolicyError, load_home_policy

    path = Path(target).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CliError(f"plugin {command}: {target} is a file, not a plugin folder")
    if _looks_like_path(target):
        raise CliError(f"plugin {command}: no such folder {target}")
    home = home_of(args)
    try:
        policy = load_home_policy(home)
    except PolicyError:
        policy = None  # the system folder then comes from CRM_DESKTOP_SYSTEM_PLUGINS only
    roots = [("bundled", discovery.bundled_plugins_dir()), ("system", discovery.system_plugins_dir(policy)),
             ("user", home.plugins_dir)]
    candidates = discovery.discover(roots)
    for candidate in candidates:
        if candidate.name == target or (candidate.manifest is None and candidate.path.name == target):
            return candidate.path
    known = ", ".join(sorted(c.name for c in candidates if "@" not in c.name)) or "none"
    raise CliError(f"plugin {command}: no plugin named {target!r} and no folder {target} (plugins: {known})")


def _check(args: argparse.Namespace) -> int:
    if not args.in_process:
        return _check_in_child(args)
    from crm_desktop.plugin_host.discovery import inspect_folder
    from crm_desktop.plugin_host.lifecycle import check_plugin

    target = Path(args.target)
    extra: tuple[Path, ...] = ()
    name = args.target
    if target.is_dir():
        candidate = inspect_folder(target.resolve(), "user")
        if candidate.error:
            return _report_check(args, {"name": candidate.name, "ok": False, "problems": [candidate.error]})
        name, extra = candidate.name, (target.resolve(),)
    build_panels = _panel_builder()
    with _host(args, extra_folders=extra) as host:
        report = check_plugin(host, name, build_panels=build_panels)
    return _report_check(args, report.to_json())


def _check_name(args: argparse.Namespace) -> str:
    from crm_desktop.plugin_host.discovery import inspect_folder

    target = Path(args.target)
    return inspect_folder(target.resolve(), "user").name if target.is_dir() else args.target


def _check_in_child(args: argparse.Namespace) -> int:
    """Run the check in a child process: whatever the plugin's code does (hang, end the process,
    start threads that never end), this process survives to report it and to record it."""
    import subprocess

    from crm_desktop.plugin_host.lifecycle import StateFile, leftover_markers, marker_path
    from crm_desktop.plugin_host.watchdog import plugin_timeout

    home = home_of(args).ensure()
    name = _check_name(args)
    # each of import, activate and every reload has the watchdog's limit; this bounds the whole check
    limit = plugin_timeout() * 8 + 60
    command = [sys.executable, "-m", "crm_desktop", "--home", str(home.root), "plugin", "check",
               str(Path(args.target).resolve()) if Path(args.target).is_dir() else args.target,
               "--json", "--in-process"]
    problem = None
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=limit,
                               stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        problem = f"hung: the check did not finish within {limit:g} s and was stopped"
        child = None
    data = None
    if child is not None:
        try:
            data = json.loads(child.stdout) if child.stdout.strip() else None
        except ValueError:
            data = None
        if data is None:
            last = (child.stderr.strip().splitlines() or [""])[-1]
            how = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit code {child.returncode}"
            problem = f"the plugin's code ended the process ({how}) without a report" + (f": {last}" if last else "")
    if data is None:
        # the plugin took the child down while loading: record it so the app keeps it disabled
        state = StateFile(home.root)
        markers = leftover_markers(home.plugin_data_dir)
        for stuck in markers or [name]:
            state.set_disabled(stuck, f"{problem} during `crm-desktop plugin check`; disabled; fix or update it, "
                                      f"then `crm-desktop plugin enable {stuck}`")
            marker_path(home.plugin_data_dir, stuck).unlink(missing_ok=True)
        data = {"name": name, "state": "failed", "ok": False, "problems": [f"{name}: {problem}; it is disabled"],
                "contributions": {}, "panels_built": None, "reloads": 0}
    return _report_check(args, data)


def _panel_builder() -> Callable[[Any, str], Sequence[object]] | None:
    """The panels are Qt: the composition root hands the UI's offscreen builder to the headless
    check; None without a Qt binding (the panels are then listed without being built)."""
    try:
        from crm_desktop.ui.plugins.check import build_panels
    except ImportError:
        return None
    return build_panels


def _report_check(args: argparse.Namespace, data: dict) -> int:
    if args.json:
        print_json(data)
    else:
        print(f"{data['name']}: {'ok' if data['ok'] else 'PROBLEMS'}")
        for kind, items in (data.get("contributions") or {}).items():
            for item in items:
                print(f"  {kind}: {item}")
        built = data.get("panels_built")
        print(f"  panels built offscreen: {', '.join(built) if built else 'none' if built is not None else 'not built (no Qt checker)'}")
        if "reloads" in data:
            print(f"  reloads: {data['reloads']}")
        for problem in data["problems"]:  # the first line says what; --json has the plugin's traceback
            print(f"  problem: {problem.strip().splitlines()[0] if problem.strip() else problem}")
    return 0 if data["ok"] else 1


def _lifecycle(args: argparse.Namespace, action: str) -> int:
    if action == "reload":  # runs the plugin's code: a full host, under the watchdog
        with _host(args) as host:
            host.record(args.name)
            record = host.reload(args.name)
            print(_summary(record))
            return 0 if record.state.value == "active" else 1
    with _catalog(args) as host:  # enable/disable only change the saved choice: no plugin code runs
        host.record(args.name)
        record = getattr(host, action)(args.name)
        print(_summary(record) + ("; it loads when the app starts (try it: crm-desktop plugin check "
                                  f"{args.name})" if record.state.value == "enabled" else ""))
        return 0 if action == "disable" or record.state.value == "enabled" else 1


def _enable(args): return _lifecycle(args, "enable")
def _disable(args): return _lifecycle(args, "disable")
def _reload(args): return _lifecycle(args, "reload")


def _uninstall(args: argparse.Namespace) -> int:
    with _catalog(args, database=args.drop_data) as host:
        host.uninstall(args.name, drop_data=args.drop_data)
    print(f"uninstalled {args.name}" + (" and dropped its data (backup in the backups folder)" if args.drop_data
                                         else "; its data is kept"))
    return 0


def _config(args: argparse.Namespace) -> int:
    from crm_desktop.cli import CliError

    pairs = []
    for item in args.assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"plugin config: {item!r} must look like key=value")
        pairs.append((key.strip(), value))
    # settings need the manifest only: no plugin code runs and the database is not opened
    with _catalog(args) as host:
        host.record(args.name)
        from crm_desktop.plugin_host.settings_store import SecretStorageError, coerce, secret_storage_problem

        manifest = host._manifest(args.name)  # one line if its plugin.json is invalid
        for key, value in pairs:  # validate all before storing any: a bad line changes nothing
            coerce(manifest, key, value, from_text=True)
        secrets = [k for k, v in pairs if v != "" and manifest.settings.schema_[k].secret]
        problem = secret_storage_problem() if secrets else None
        if problem:
            raise SecretStorageError(f"plugin {args.name} setting {secrets[0]}: cannot store the secret: "
                                     f"{problem}; nothing was stored")
        for key, value in pairs:
            host.set_setting(args.name, key, value, from_text=True)
        fields = {f.name: f for f in host.settings_schema(args.name)}
        for key, value in host.settings(args.name).items():
            shown = "********" if fields[key].secret and value not in (None, "") else value
            print(f"{for_terminal(key)} = {for_terminal(shown)}")
    return 0


# --------------------------------------------------------------------------- plugin commands


def _command_word(argv: Sequence[str]) -> str | None:
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            return None
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        return token
    return None


def _home_arg(argv: Sequence[str]) -> str | None:
    for i, token in enumerate(argv):
        if token == "--home" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--home="):
            return token.split("=", 1)[1]
    return None


def add_plugin_cli_commands(registry, known: set[str], argv: Sequence[str]) -> None:
    """Add plugins' ``crm_cli_commands`` when ``argv`` names a command the core lacks.

    The host is started only then; if anything fails the command stays
    unknown and argparse says so in one line.
    """
    word = _command_word(argv)
    if word is None or word in known:
        return
    import atexit
    import logging

    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.plugin_host.host import PluginHost

    log = logging.getLogger(__name__)
    try:
        home = Home.resolve(_home_arg(argv))
        core = Core.open(home)
        host = PluginHost(core, home).start()
    except Exception as exc:
        log.warning("plugin commands unavailable: %s", exc)
        return

    def close() -> None:
        host.stop()
        core.close()

    atexit.register(close)
    for name, record in host.records.items():
        if record.state.value != "active":
            continue
        for command in host.cli_commands(name):
            if command.name in known:
                log.warning("plugin %s: command %r is a core command; ignored", name, command.name)
                continue
            known.add(command.name)
            parser = registry.command(command.name, f"{command.help} (plugin {name})",
                                      _plugin_handler(host, name, command))
            if command.configure is not None:
                host.guard(name, f"configuring command {command.name}", command.configure, parser)


def _plugin_handler(host, plugin: str, command):
    def handler(args: argparse.Namespace) -> int:
        result = host.guard(plugin, f"command {command.name}", lambda: command.run(host.context(plugin), args) or 0)
        if result is None and host.records[plugin].state.value == "failed":
            error = host.records[plugin].error or ""
            print(f"error: plugin {plugin} command {command.name} failed: {for_terminal(error.splitlines()[0] if error else '')}",
                  file=sys.stderr)
            return 1
        return int(result or 0)

    return handler
