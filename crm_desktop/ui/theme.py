"""Light and dark palettes and the application style sheet.

The style sheet in ``resources/style.qss`` is a template; :func:`apply_theme` fills in the
colours of the scheme the system asks for (or the one the user chose) and follows changes
of the system scheme while the app runs.
"""

from __future__ import annotations

import logging
from string import Template
from typing import TypeVar

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from crm_desktop.ui.resources import resources_dir

log = logging.getLogger(__name__)

LIGHT = {
    "window": "#f4f6fa", "panel": "#ffffff", "input": "#ffffff", "text": "#1d2433", "muted": "#6b7385",
    "border": "#dde2ea", "hover": "#eef1f6", "alt_row": "#f8f9fc", "selection": "#dbe7ff",
    "accent": "#3b6cf6", "accent_hover": "#2f5bd6", "danger": "#d93a3a", "danger_bg": "#fff4f4",
    "warn": "#e0a526", "warn_bg": "#fff8e6", "scroll": "#c6ccd8", "chip": "#e6edff", "chip_text": "#2f4fb0",
    "sidebar": "#1e2541", "sidebar_text": "#c3c9dc", "sidebar_hover": "#2c3558", "sidebar_heading": "#7c85a3",
}
DARK = {
    "window": "#14171f", "panel": "#1c2029", "input": "#232834", "text": "#e4e7ee", "muted": "#929aab",
    "border": "#2d3341", "hover": "#272d3a", "alt_row": "#20242e", "selection": "#27406f",
    "accent": "#5b86ff", "accent_hover": "#4a74ea", "danger": "#ff6b6b", "danger_bg": "#3a2224",
    "warn": "#e0a526", "warn_bg": "#3a3220", "scroll": "#3b4252", "chip": "#2a3760", "chip_text": "#b7c8ff",
    "sidebar": "#0f1220", "sidebar_text": "#aab1c7", "sidebar_hover": "#1d2236", "sidebar_heading": "#5e6683",
}

#: the colours in use now, for widgets that paint themselves (kanban cards, delegates)
current: dict[str, str] = dict(LIGHT)


_Obj = TypeVar("_Obj", bound=QObject)


def named(obj: _Obj, name: str) -> _Obj:
    """``obj`` with its object name set (the stylesheet's selector, and what tests find it by).

    The same as passing ``objectName=`` to the constructor, which PySide6 accepts at run time
    but its stubs do not declare for inherited properties, so the type check cannot follow it."""
    obj.setObjectName(name)
    return obj


def system_is_dark() -> bool:
    """True when the platform asks for a dark colour scheme."""
    hints = QGuiApplication.styleHints()
    try:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:  # Qt older than 6.5: judge by the window colour
        return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, mode: str = "system") -> str:
    """Style ``app`` for ``mode`` ("system", "light" or "dark"); returns the scheme applied."""
    dark = system_is_dark() if mode == "system" else mode == "dark"
    colors = DARK if dark else LIGHT
    current.clear()
    current.update(colors)
    app.setStyle("Fusion")  # the native styles ignore parts of the sheet; Fusion honours it all
    palette = QPalette()
    for role, key in ((QPalette.ColorRole.Window, "window"), (QPalette.ColorRole.Base, "panel"),
                      (QPalette.ColorRole.AlternateBase, "alt_row"), (QPalette.ColorRole.Text, "text"),
                      (QPalette.ColorRole.WindowText, "text"), (QPalette.ColorRole.Button, "panel"),
                      (QPalette.ColorRole.ButtonText, "text"), (QPalette.ColorRole.Highlight, "accent"),
                      (QPalette.ColorRole.PlaceholderText, "muted"), (QPalette.ColorRole.ToolTipBase, "panel"),
                      (QPalette.ColorRole.ToolTipText, "text")):
        palette.setColor(role, QColor(colors[key]))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    app.setPalette(palette)
    try:
        template = Template((resources_dir() / "style.qss").read_text(encoding="utf-8"))
        app.setStyleSheet(template.safe_substitute(colors, icons=(resources_dir() / "icons").as_posix()))
    except OSError:
        log.warning("style sheet missing in %s; using the plain Fusion style", resources_dir())
    return "dark" if dark else "light"


def follow_system(app: QApplication, mode_getter) -> None:
    """Re-apply the theme when the system scheme changes and the user chose "system"."""
    hints = QGuiApplication.styleHints()
    signal = getattr(hints, "colorSchemeChanged", None)
    if signal is not None:
        signal.connect(lambda *_: apply_theme(app, mode_getter()) if mode_getter() == "system" else None)
