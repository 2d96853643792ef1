"""What ``crm-desktop --smoke-test`` reports beyond the views: build, database, keyring, sync, plugins.

The smoke test answers "does this installation work?" the same way from source
and from the frozen (PyInstaller) build, so each check here looks for what a
build can get wrong: the migrations not shipped, keyring backends not
collected, ``requests`` without its CA bundle, a plugin that cannot import.

Each ``*_report`` returns a plain dict with ``ok``; :func:`add_environment_checks`
merges them into the smoke report and ANDs their ``ok`` into its own.
What does *not* make ``ok`` False, because a healthy fresh install has it:
no system keyring on this session (said clearly), no sync server configured.

No Qt here: app.py passes the host and the Qt adapter in.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from crm_desktop.paths import HOME_ENV, Home

log = logging.getLogger(__name__)

#: Plugin states that mean "this works": active, turned off by the user, or refused by the admin's policy.
_FINE_STATES = {"active", "disabled", "blocked"}


def smoke_home(explicit: str | os.PathLike[str] | None) -> Home:
    """The home the smoke test runs in.

    ``--home DIR`` or ``CRM_DESKTOP_HOME`` when given (so a test can put plugins
    in ``<home>/plugins`` first); otherwise a fresh temporary folder, removed at
    exit, so the smoke test never migrates or changes a rep's real data.
    """
    if explicit or os.environ.get(HOME_ENV):
        return Home.resolve(explicit)
    root = Path(tempfile.mkdtemp(prefix="crm-desktop-smoke-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return Home(root.resolve())


def build_report() -> dict[str, Any]:
    """Which build this is: frozen or from source, the app's and Python's versions."""
    from crm_desktop import __version__

    return {"ok": True, "frozen": bool(getattr(sys, "frozen", False)), "version": __version__,
            "python": sys.version.split()[0], "platform": sys.platform, "executable": sys.executable}


def database_report(home: Home) -> dict[str, Any]:
    """The database exists and carries the core schema's head revision."""
    from crm_desktop.storage import migrate

    try:
        location = migrate.core_script_location()
        current = migrate.current_revision(home.db_path)
        ok = migrate.is_current(home.db_path)
    except Exception as exc:  # report, do not raise: the other checks still run
        return {"ok": False, "path": str(home.db_path), "error": str(exc)}
    return {"ok": ok, "path": str(home.db_path), "revision": current, "migrations": str(location)}


def keyring_report() -> dict[str, Any]:
    """The keyring backend in use, the backends this build knows, and whether secrets can be kept.

    ``ok`` is False only when the build knows no backend at all (its keyring
    backends were not collected); no system keyring on this session is
    ``available: False`` with a plain explanation, not a failure.
    """
    try:
        from importlib import metadata

        import keyring
        from keyring.backends import fail, null

        backend = keyring.get_keyring()
        known = sorted({ep.name for ep in metadata.entry_points(group="keyring.backends")})
        viable = sorted(f"{type(b).__module__}.{type(b).__name__}" for b in keyring.backend.get_all_keyring())
    except Exception as exc:
        return {"ok": False, "available": False, "error": f"keyring failed to load: {exc}"}
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    available = not isinstance(backend, (fail.Keyring, null.Keyring))
    report: dict[str, Any] = {"ok": bool(known), "available": available, "backend": name,
                              "known_backends": known, "viable_backends": viable}
    if not available:
        report["detail"] = ("no system keyring is available on this session (no Secret Service, KWallet, "
                            "macOS Keychain or Windows Credential Locker answered): plugin secrets and the "
                            "sync login cannot be stored until one is")
    if not known:
        report["error"] = "this build knows no keyring backend (keyring's entry points were not collected)"
    return report


def sync_report(home: Home) -> dict[str, Any]:
    """Whether this build could sync: requests importable with its CA bundle, a client, a server configured.

    Honest about what exists: while there is no ``crm_desktop.sync`` client
    (and no login to configure a server) it says so, and ``ready`` is False.
    ``ok`` covers only what a build can break: requests and its CA bundle.
    """
    report: dict[str, Any] = {"ok": True, "ready": False}
    try:
        import certifi
        import requests

        report["requests"] = requests.__version__
        bundle = certifi.where()
        report["ca_bundle"] = bundle
        if not Path(bundle).is_file():
            report["ok"] = False
            report["error"] = f"requests' CA bundle is missing ({bundle}): HTTPS to the sync server would fail"
    except Exception as exc:
        report.update(ok=False, requests=None, error=f"requests is not importable: {exc}")
    report["client"] = importlib.util.find_spec("crm_desktop.sync") is not None
    report["server"] = _configured_server(home) if report["client"] else None
    if not report["client"]:
        report["detail"] = "this build has no sync client yet: the app works offline only"
    elif report["server"] is None:
        report["detail"] = "no sync server configured"
    report["ready"] = bool(report["ok"] and report["client"] and report["server"])
    return report


def _configured_server(home: Home) -> str | None:
    """The sync client's server URL for ``home``: its ``configured_server(home)``, when it has one."""
    try:
        import crm_desktop.sync as sync

        configured = getattr(sync, "configured_server", None)
        server = configured(home) if callable(configured) else None
    except Exception as exc:
        log.warning("the sync client could not say which server is configured: %s", exc)
        return None
    return str(server) if server else None


def plugins_report(host: Any, adapter: Any = None) -> dict[str, Any]:
    """Each plugin found (bundled, system, ``<home>/plugins``) with its state; ``ok`` if none is broken.

    ``adapter`` (the Qt adapter, optional) adds how many panels each plugin's
    factories built.
    """
    if host is None:
        return {"ok": False, "error": "the plugin host did not start (see the log above)", "plugins": {}}
    plugins: dict[str, Any] = {}
    for name, record in host.records.items():
        state = getattr(record.state, "value", str(record.state))
        entry: dict[str, Any] = {"state": state, "version": record.version, "source": record.source}
        if record.error:
            entry["error"] = record.error.strip().splitlines()[0]
        panels = getattr(adapter, "panels_built", None)
        if callable(panels):
            entry["panels"] = len(panels(name))
        plugins[name] = entry
    broken = sorted(n for n, e in plugins.items() if e["state"] not in _FINE_STATES)
    report: dict[str, Any] = {"ok": not broken, "plugins": plugins}
    if broken:
        report["error"] = f"not working: {', '.join(broken)}"
    return report


def add_environment_checks(report: dict[str, Any], home: Home, host: Any, adapter: Any = None) -> dict[str, Any]:
    """Add the build, database, keyring, sync and plugin reports to ``report`` and AND their ``ok``."""
    sections = {"build": build_report(), "database": database_report(home), "keyring": keyring_report(),
                "sync": sync_report(home), "plugins": plugins_report(host, adapter)}
    report.update(sections)
    report["ok"] = bool(report.get("ok", True)) and all(section["ok"] for section in sections.values())
    return report


def text_lines(report: dict[str, Any]) -> list[str]:
    """The sections of :func:`add_environment_checks` as the smoke test prints them without ``--json``."""
    lines: list[str] = []

    def line(ok: bool, label: str, text: str) -> None:
        lines.append(f"{'ok ' if ok else 'FAIL'} {label:<11} {text}")

    build = report.get("build")
    if build:
        line(True, "build", f"crm-desktop {build['version']} {'frozen' if build['frozen'] else 'from source'}, "
                            f"Python {build['python']}")
    db = report.get("database")
    if db:
        line(db["ok"], "database", f"revision {db.get('revision')} at {db['path']}" if db["ok"]
             else db.get("error", "not at the head revision"))
    kr = report.get("keyring")
    if kr:
        detail = kr.get("error") or (kr["backend"] if kr["available"] else f"none available: {kr['detail']}")
        line(kr["ok"], "keyring", f"{detail} (backends in this build: {', '.join(kr.get('known_backends', [])) or 'none'})")
    sync = report.get("sync")
    if sync:
        detail = sync.get("error") or (f"ready, server {sync['server']}" if sync["ready"]
                                       else f"not ready: {sync.get('detail', '')}")
        line(sync["ok"], "sync", f"requests {sync.get('requests')}; {detail}")
    plugins = report.get("plugins")
    if plugins:
        if "error" in plugins and not plugins["plugins"]:
            line(False, "plugins", plugins["error"])
        for name, entry in plugins["plugins"].items():
            extra = f", {entry['panels']} panel(s)" if "panels" in entry else ""
            why = f": {entry['error']}" if "error" in entry and entry["state"] != "active" else ""
            line(entry["state"] in _FINE_STATES, "plugin",
                 f"{name} {entry['version']} ({entry['source']}) {entry['state']}{extra}{why}")
    return lines
