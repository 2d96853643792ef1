"""``crm-desktop plugin check``: build each panel of a plugin offscreen and report on it.

:func:`build_panels` is called by the ``plugin check`` command with an active
host. It needs a QApplication; when there is none (the command line), it
creates one on the ``offscreen`` platform so no window ever appears. Each
panel's factory is called directly (not through ``host.guard``): a check
reports a broken factory, it does not mark the installed plugin failed.
Every widget built is destroyed again before returning.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from crm_desktop.ui.plugins.seams import PluginHostView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PanelReport:
    """How one panel fared: its id, title, area, the size it asked for, and the error if it failed."""

    id: str
    title: str
    path: str
    area: str
    ok: bool
    width: int = 0
    height: int = 0
    widget_class: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``plugin check --json``."""
        return asdict(self)

    def __str__(self) -> str:
        if self.ok:
            return f"panel {self.id} ({self.title!r}, {self.area}): ok, {self.widget_class} {self.width}x{self.height}"
        last = (self.error or "").strip().splitlines()[-1:] or ["unknown error"]
        return f"panel {self.id} ({self.title!r}, {self.area}): FAILED: {last[0]}"


def ensure_application() -> QApplication:
    """The running QApplication, or a new offscreen one."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        # the platform is chosen when the first QApplication starts: a check never shows a window
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication(["crm-desktop-plugin-check"])
    assert isinstance(app, QApplication), "a QCoreApplication without widgets is running"
    return app


def build_panels(host: PluginHostView, name: str) -> list[PanelReport]:
    """Build every panel ``name`` contributes, measure it, destroy it; one report per panel."""
    app = ensure_application()
    from PySide6.QtCore import QCoreApplication, QEvent, Qt
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    reports: list[PanelReport] = []
    for panel in host.panels(name) or []:
        frame = QWidget()
        frame.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(0, 0, 0, 0)
        try:
            widget = panel.factory(frame)
            if not isinstance(widget, QWidget):
                raise TypeError(f"factory returned {type(widget).__name__}, expected a QWidget")
            layout.addWidget(widget)
            frame.resize(1000, 700)
            frame.show()  # layouts and lazy construction in showEvent run now
            app.processEvents()
            hint = widget.sizeHint()
            reports.append(PanelReport(panel.id, panel.title, panel.path, panel.area, ok=True,
                                       width=max(hint.width(), 0), height=max(hint.height(), 0),
                                       widget_class=type(widget).__name__))
        except Exception:
            log.info("panel %s of plugin %s failed to build", panel.id, name, exc_info=True)
            reports.append(PanelReport(panel.id, panel.title, panel.path, panel.area, ok=False,
                                       error=traceback.format_exc()))
        finally:
            frame.hide()
            frame.deleteLater()
            app.processEvents()
    # deleteLater needs the event loop to reach the deferred-delete events
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return reports
