"""Build the frozen app and prove it loads plugins written after the build (``make package-test``).

1. ``packaging/build.sh`` builds ``dist/crm-desktop/`` (skipped with ``--no-build``);
2. a plugin that imports PySide6 widgets, the plugin API, the shipped libraries
   and a spread of the standard library the app itself never imports is written
   into a fresh home's ``plugins/`` folder, and ``crm-desktop --home HOME
   --smoke-test --json`` must pass with that plugin active and its panel built;
3. a plugin importing a library the build does not ship must fail the smoke
   test with one line naming the library, and no traceback;
4. with ``xvfb-run`` available, step 2 again on a virtual X server (Qt's xcb plugin).

    python packaging/package_test.py [--no-build] [--exe dist/crm-desktop/crm-desktop]

``--exe "python -m crm_desktop"`` runs the same checks from source. The plugin
sources are functions here so ``tests/qt/test_smoke_report.py`` uses the same ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXE = REPO / "dist" / "crm-desktop" / "crm-desktop"
EXTERNAL = "external-panel"
NEEDS_MISSING = "needs-matplotlib"

#: Standard library modules the app does not import itself: a plugin importing them proves the build
#: collected the whole standard library, not only what PyInstaller saw the app use.
STDLIB_PROBES = (
    "statistics", "fractions", "difflib", "colorsys", "calendar", "zoneinfo", "tomllib", "wave",
    "xml.dom.minidom", "xml.etree.ElementTree", "html.parser", "email.mime.text", "http.cookies",
    "zipfile", "tarfile", "gzip", "bz2", "lzma", "csv", "sqlite3", "decimal", "uuid", "secrets",
    "concurrent.futures", "asyncio", "multiprocessing", "unittest.mock", "pprint", "textwrap",
    "graphlib", "ipaddress", "mailbox", "smtplib", "imaplib", "ftplib", "curses", "readline",
    "ctypes", "dbm", "shelve", "pickletools", "plistlib", "unicodedata", "locale", "gettext",
)


def _manifest(name: str, main: str, **extra) -> str:
    manifest = {"name": name, "version": "1.0.0", "displayName": name.replace("-", " ").title(),
                "description": "written by packaging/package_test.py after the build", "main": main,
                "permissions": ["contacts:read"], **extra}
    return json.dumps(manifest, indent=2)


def write_external_plugin(plugins_dir: Path) -> Path:
    """A plugin the build never saw: PySide6 widgets, the plugin API, shipped libraries, much of the stdlib."""
    folder = Path(plugins_dir) / EXTERNAL
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(_manifest(EXTERNAL, "external_panel.py"), encoding="utf-8")
    probes = ", ".join(repr(m) for m in STDLIB_PROBES if not (m in {"curses", "readline"} and sys.platform == "win32"))
    (folder / "external_panel.py").write_text(textwrap.dedent(f'''\
        """A panel written after the build, against the plugin API and the libraries plugins may use."""
        import importlib

        import pydantic
        import requests
        import sqlalchemy
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

        from crm_desktop.plugin_api import Panel, hookimpl
        from crm_desktop.plugin_api.libraries import QT_MODULES

        STDLIB = [{probes}]
        LOADED = [importlib.import_module(name).__name__ for name in STDLIB]
        QT = [importlib.import_module("PySide6." + name).__name__ for name in QT_MODULES]


        class Visit(pydantic.BaseModel):
            contact: str
            minutes: int


        @hookimpl
        def crm_activate(ctx):
            ctx.log.info("external panel: %d stdlib modules, %d Qt modules, requests %s, SQLAlchemy %s",
                         len(LOADED), len(QT), requests.__version__, sqlalchemy.__version__)


        @hookimpl
        def crm_panels(ctx):
            def build(parent):
                widget = QWidget(parent)
                layout = QVBoxLayout(widget)
                visit = Visit(contact="Ada", minutes=30)
                label = QLabel(f"Written after the build: {{visit.contact}}, {{visit.minutes}} min", widget)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                layout.addWidget(label)
                layout.addWidget(QPushButton("Refresh", widget))
                return widget

            return [Panel("external", "External panel", "/plugins/external", build)]
        '''), encoding="utf-8")
    return folder


def write_plugin_needing_missing_library(plugins_dir: Path) -> Path:
    """A plugin importing matplotlib, which crm-desktop does not ship."""
    folder = Path(plugins_dir) / NEEDS_MISSING
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(_manifest(NEEDS_MISSING, "charts.py"), encoding="utf-8")
    (folder / "charts.py").write_text("import matplotlib.pyplot\n", encoding="utf-8")
    return folder


def run_smoke(command: list[str], home: Path, timeout: float = 300,
              platform: str = "offscreen") -> tuple[int, dict, str, float]:
    """``command --home HOME --smoke-test --json``: exit code, the JSON report, output, wall seconds.

    ``platform="xcb"`` runs it on a virtual X server (``xvfb-run``), through Qt's real xcb plugin.
    """
    env = {**os.environ, "QT_QPA_PLATFORM": platform}
    if platform == "xcb":
        command = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *command]
    env.pop("CRM_DESKTOP_HOME", None)
    started = time.perf_counter()
    result = subprocess.run([*command, "--home", str(home), "--smoke-test", "--json"], capture_output=True,
                            text=True, env=env, timeout=timeout, cwd=str(home.parent))
    seconds = time.perf_counter() - started
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {}
    return result.returncode, report, result.stdout + result.stderr, seconds


def check_external(command: list[str], workdir: Path, platform: str = "offscreen") -> list[str]:
    """Problems with the plugin-written-after-the-build run; empty when it passed."""
    home = workdir / f"home-external-{platform}"
    write_external_plugin(home / "plugins")
    code, report, output, seconds = run_smoke(command, home, platform=platform)
    print(f"smoke test with {EXTERNAL} ({platform}): exit {code} in {seconds:.1f} s")
    problems = []
    plugin = report.get("plugins", {}).get("plugins", {}).get(EXTERNAL, {})
    if code != 0 or not report.get("ok"):
        problems.append(f"smoke test exit {code}, ok={report.get('ok')}")
    if plugin.get("state") != "active":
        problems.append(f"{EXTERNAL} is {plugin.get('state')}: {plugin.get('error')}")
    if plugin.get("panels") != 1:
        problems.append(f"{EXTERNAL} built {plugin.get('panels')} panel(s), expected 1")
    if problems:
        print(output[-4000:])
    else:
        kr = report["keyring"]
        print(f"  {EXTERNAL}: active, 1 panel; frozen={report['build']['frozen']}; "
              f"keyring {kr.get('backend')} (available={kr.get('available')}); "
              f"sync requests {report['sync'].get('requests')}, ready={report['sync'].get('ready')}")
    return problems


def check_missing_library(command: list[str], workdir: Path) -> list[str]:
    """Problems with the plugin-needing-a-missing-library run; empty when it failed as it should."""
    home = workdir / "home-missing"
    write_plugin_needing_missing_library(home / "plugins")
    code, report, output, seconds = run_smoke(command, home)
    print(f"smoke test with {NEEDS_MISSING}: exit {code} in {seconds:.1f} s (expected 1)")
    plugin = report.get("plugins", {}).get("plugins", {}).get(NEEDS_MISSING, {})
    expected = (f"plugin {NEEDS_MISSING} needs the library 'matplotlib', "
                f"which this build of crm-desktop does not include")
    problems = []
    if code != 1:
        problems.append(f"exit {code}, expected 1 (a failed plugin fails the smoke test)")
    if plugin.get("state") != "failed" or not str(plugin.get("error", "")).startswith(expected):
        problems.append(f"{NEEDS_MISSING}: {plugin}; expected failed with {expected!r}")
    if "Traceback" in output:
        problems.append("a traceback was printed")
    if problems:
        print(output[-4000:])
    else:
        print(f"  {NEEDS_MISSING}: {plugin['error'][:100]}...")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="use the existing dist/crm-desktop")
    parser.add_argument("--exe", default=str(DEFAULT_EXE),
                        help="the app to test (a path, or a command such as 'python -m crm_desktop')")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not args.no_build:
        build_started = time.perf_counter()
        subprocess.run(["bash", str(REPO / "packaging" / "build.sh")], check=True, cwd=REPO,
                       env={**os.environ, "PY": os.environ.get("PY", sys.executable)})
        print(f"build took {time.perf_counter() - build_started:.0f} s")
    command = shlex.split(args.exe) if " " in args.exe else [args.exe]
    if not Path(command[0]).exists():
        print(f"error: {command[0]} does not exist: run `make package` first", file=sys.stderr)
        return 2
    command[0] = str(Path(command[0]).absolute())  # the smoke tests run in a temporary folder
    with tempfile.TemporaryDirectory(prefix="crm-package-test-") as tmp:
        problems = check_external(command, Path(tmp)) + check_missing_library(command, Path(tmp))
        if shutil.which("xvfb-run"):  # the platform plugin a rep's X11 desktop uses
            problems += check_external(command, Path(tmp), platform="xcb")
        else:
            print("xvfb-run not found: the xcb platform plugin was not started")
    print(f"package test {'FAILED' if problems else 'passed'} in {time.perf_counter() - started:.0f} s")
    for problem in problems:
        print(f"  - {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
