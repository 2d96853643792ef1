"""Quitting the real app: plugins are deactivated and the process exits cleanly.

The app runs as the user starts it (``python -m crm_desktop --home H``), in a child
process on the offscreen platform. The quit-probe plugin (``scripts/quit_probe_plugin``)
closes the main window a moment after start and writes a file from ``crm_deactivate``,
so the test sees what a plugin author relies on: the hook reference promises
``crm_deactivate`` when the window closes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "scripts" / "quit_probe_plugin"


def _write_plugin(home: Path) -> Path:
    folder = home / "plugins" / "quit-probe"
    shutil.copytree(PROBE, folder)
    return folder


def test_quitting_the_app_deactivates_plugins_and_exits_zero(tmp_path):
    home = tmp_path / "home"
    _write_plugin(home)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CRM_DESKTOP_HOME=str(home), CRM_QUIT_PROBE_MS="300")
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "crm_desktop", "--home", str(home)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Fatal Python error" not in result.stderr
    data = next(home.rglob("quit-probe*/activated"), None)
    assert data is not None, f"the plugin never activated: {result.stderr[-3000:]}"
    assert (data.parent / "deactivated").read_text() == "1\n"
