"""Closes every visible top-level window after CRM_QUIT_PROBE_MS (default 1500) and appends a
line to ``<data_dir>/deactivated`` from ``crm_deactivate``, so a script can count clean quits."""

import os

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from crm_desktop.plugin_api import hookimpl


def _close_windows() -> None:
    # What a user's click on the window's close button does: closeEvent, then the app
    # quits because its last window closed.
    for widget in QApplication.topLevelWidgets():
        if widget.isWindow() and widget.isVisible():
            widget.close()


@hookimpl
def crm_activate(ctx):
    # runs on the host's watchdog thread (a plugin that never returns must not hang the app),
    # so no Qt objects here: the timer starts in crm_menu_actions, which the GUI thread calls
    with open(ctx.data_dir / "activated", "a") as f:
        f.write("1\n")


@hookimpl
def crm_menu_actions(ctx):
    QTimer.singleShot(int(os.environ.get("CRM_QUIT_PROBE_MS", "1500")), _close_windows)
    return []


@hookimpl
def crm_deactivate(ctx):
    with open(ctx.data_dir / "deactivated", "a") as f:
        f.write("1\n")
