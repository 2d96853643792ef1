"""The app on a real X server (Xvfb, Qt's xcb platform), as on a rep's Linux desktop.

The offscreen platform used by the other Qt tests needs none of the X11 libraries, so
only these tests notice when the xcb platform plugin cannot load (a missing
libxcb-* package makes Qt abort at start with a message naming only xcb-cursor0).
``scripts/ensure-system-deps.sh`` installs Xvfb and those libraries.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "quit_cycles.py"


def _quit_cycles():
    spec = importlib.util.spec_from_file_location("quit_cycles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def x_display():
    with _quit_cycles().Xvfb() as server:
        yield server.display


def _xcb_env(display: str, home: Path) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=display, CRM_DESKTOP_HOME=str(home))
    env.pop("WAYLAND_DISPLAY", None)
    return env


def test_smoke_test_opens_every_view_on_x11(x_display, tmp_path):
    result = subprocess.run([sys.executable, "-m", "crm_desktop", "--smoke-test"],
                            capture_output=True, text=True, timeout=120, env=_xcb_env(x_display, tmp_path / "h"))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "smoke test passed" in result.stdout
    assert "Could not load the Qt platform plugin" not in result.stderr


def test_window_renders_on_x11(x_display, tmp_path):
    png = tmp_path / "x11.png"
    result = subprocess.run([sys.executable, "-m", "crm_desktop", "--screenshot", str(png), "--view", "contacts"],
                            capture_output=True, text=True, timeout=120, env=_xcb_env(x_display, tmp_path / "h"))
    assert result.returncode == 0, result.stderr[-3000:]
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1280, 800)
    colours = {image.pixel(x, y) for x in range(0, 1280, 40) for y in range(0, 800, 40)}
    assert len(colours) > 5, "the window rendered blank"


def test_start_and_quit_under_xvfb_runs_clean():
    """The release check runs 50 cycles (``make quit-cycles``); the suite runs a few."""
    result = subprocess.run([sys.executable, str(SCRIPT), "--runs", "3", "--contacts", "50"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "3 of 3 quits clean, 0 aborted or hung (xcb" in result.stdout
