"""Quitting the real app: plugins are deactivated and the process exits cleanly.

The app runs as the user starts it (``python -m crm_desktop --home H``), in a child
process on the offscreen platform. A plugin in the home quits the app once it is
active and writes a file from ``crm_deactivate``, so the test sees what a plugin
author relies on: the hook reference promises ``crm_deactivate`` when the window closes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = textwrap.dedent(
    '''
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from crm_desktop.plugin_api import hookimpl


    @hookimpl
    def crm_activate(ctx):
        (ctx.data_dir / "activated").write_text("yes")
        # Quit as a user would (the window's File > Quit ends the event loop the same way).
        QTimer.singleShot(300, QApplication.instance().quit)


    @hookimpl
    def crm_deactivate(ctx):
        (ctx.data_dir / "deactivated").write_text("yes")
    '''
)


def _write_plugin(home: Path) -> Path:
    folder = home / "plugins" / "quit-probe"
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "quit-probe", "version": "1.0.0", "displayName": "Quit probe",
        "description": "Quits the app and records deactivation", "author": "tests",
        "main": "quit_probe.py", "permissions": [],
    }))
    (folder / "quit_probe.py").write_text(PLUGIN)
    return folder


def test_quitting_the_app_deactivates_plugins_and_exits_zero(tmp_path):
    home = tmp_path / "home"
    _write_plugin(home)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CRM_DESKTOP_HOME=str(home))
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "crm_desktop", "--home", str(home)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Fatal Python error" not in result.stderr
    data = next(home.rglob("quit-probe*/activated"), None)
    assert data is not None, f"the plugin never activated: {result.stderr[-3000:]}"
    assert (data.parent / "deactivated").read_text() == "yes"
