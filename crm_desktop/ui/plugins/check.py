"""``crm-desktop plugin check``: build each panel of a plugin offscreen and report on it.

:func:`build_panels` is called by the ``plugin check`` command with an active
host. It needs a QApplication; when there is none (the command line), it
creates one on the ``offscreen`` platform so no window ever appears. Each
panel's factory is called directly (not through ``host.guard``): a check
reports a broken factory, it does not mark the installed plugin failed.
Every widget built is destroyed again before returning.

Panels get ``ctx.ui`` as in the app (:class:`~crm_desktop.ui.plugins.ui_facade.QtPluginUi`
over an offscreen stand-in for the main window), so a panel that loads in the background
(``ctx.ui.run_in_background``) is checked too: the check waits for that work (at most
:data:`BACKGROUND_WAIT_S` seconds) and reports the status messages the panel left.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from crm_desktop.ui.plugins.seams import PluginHostView

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

#: how long a check waits for the background work a panel started while it was built
BACKGROUND_WAIT_S = 10.0


class CheckHost(PluginHostView, Protocol):
    """The plugin host as the check uses it: the view, plus installing how ``ctx.ui`` is made."""

    def set_ui_factory(self, factory: Callable[[str], Any] | None) -> None:
        """``factory(name)`` makes a plugin's ``ctx.ui`` (None: no window)."""


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


def build_panels(host: CheckHost, name: str) -> list[PanelReport]:
    """Build every panel ``name`` contributes, measure it, destroy it; one report per panel."""
    app = ensure_application()
    from PySide6.QtCore import QCoreApplication, QEvent, Qt
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from crm_desktop.ui.plugins.ui_facade import QtPluginUi

    window = _check_window()
    made: list[QtPluginUi] = []

    def make_ui(plugin: str) -> QtPluginUi:
        made.append(QtPluginUi(window, host, plugin))
        return made[-1]

    host.set_ui_factory(make_ui)  # a check host is the command line's own: it has no window otherwise
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
            _wait_for_background(app, made)
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
    for ui in made:
        ui.close()  # work still running when the panels are gone delivers nothing
    host.set_ui_factory(None)
    # deleteLater needs the event loop to reach the deferred-delete events
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return reports


def _wait_for_background(app: Any, made: list[Any]) -> None:
    """Let the panels' background work finish and its results reach them (bounded)."""
    import time

    deadline = time.monotonic() + BACKGROUND_WAIT_S
    while any(ui.busy() for ui in made) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def _check_window() -> Any:
    """An offscreen stand-in for the main window: what ``ctx.ui`` asks of it, logged."""
    from PySide6.QtWidgets import QWidget

    class CheckWindow(QWidget):
        def open_record(self, entity: str, record_id: str) -> None:
            log.info("plugin check: a panel opened %s %s", entity, record_id)

        def show_status(self, text: str, timeout_ms: int = 4000) -> None:
            log.info("plugin check: status %r", text)

    return CheckWindow()
