"""Finding files in ``resources/`` (icons, style sheet) and turning SVGs into tinted icons."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

log = logging.getLogger(__name__)


def resources_dir() -> Path:
    """The ``resources/`` folder (:func:`crm_desktop.paths.shipped_dir`: checkout or frozen build)."""
    from crm_desktop.paths import shipped_dir

    # a missing folder still gets a path, so the warnings below name where icons were expected
    return shipped_dir("resources") or Path(__file__).resolve().parents[2] / "resources"


@functools.lru_cache(maxsize=256)
def icon(name: str, color: str = "#5b6473", size: int = 20) -> QIcon:
    """The SVG ``resources/icons/<name>.svg`` drawn in ``color``; an empty icon if it is missing.

    The SVGs are stroke-only line icons drawn in black; tinting here lets one file serve the
    dark sidebar, light pages and dark mode alike.
    """
    path = resources_dir() / "icons" / f"{name}.svg"
    try:
        svg = path.read_text(encoding="utf-8").replace("#000000", color)
    except OSError:
        log.warning("icon %s not found in %s", name, path.parent)
        return QIcon()
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for scale in (1, 2):
        pixmap = QPixmap(QSize(size * scale, size * scale))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        pixmap.setDevicePixelRatio(scale)
        result.addPixmap(pixmap)
    return result
