"""The GUI composition root: Qt application, core, main window, plugins.

``run_gui(args)`` is what ``crm-desktop`` without a subcommand runs. It also renders
screenshots (``--screenshot PNG --view NAME --size WxH``) and runs the headless smoke test
(``--smoke-test [--json]``). Plugins are optional: any failure while starting them is
logged and shown in the status bar, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

VIEWS = ("today", "contacts", "companies", "leads", "deals", "activities", "plugins")


def _application(headless: bool):
    if headless and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("crm-desktop")
    app.setOrganizationName("crm-desktop")
    return app


def _settings(home, ephemeral: bool):
    from PySide6.QtCore import QSettings

    if ephemeral:  # screenshots and smoke tests must not pick up (or change) the user's layout
        return QSettings(str(Path(home.root) / ".ui-ephemeral.ini"), QSettings.Format.IniFormat)
    return QSettings(str(Path(home.root) / "ui.ini"), QSettings.Format.IniFormat)


def build_window(core, *, ephemeral: bool = False, dev: bool = False):
    """Make the main window over an open core, with the plugins started when available.

    Returns ``(window, host)``; ``host`` is None when the plugin host is missing or failed.
    """
    from crm_desktop.ui import dispatch
    from crm_desktop.ui.executor import DataExecutor
    from crm_desktop.ui.shell import MainWindow

    settings = _settings(core.home, ephemeral)
    if ephemeral:
        settings.clear()
    # The one way onto the GUI thread, installed before anything subscribes to the event bus
    # (window, plugin host, sync), and the one executor for the UI's database work. The window
    # owns both from here on and stops them when it shuts down.
    dispatcher = dispatch.install(core.services.events)
    window = MainWindow(core.services, settings=settings, home=core.home, executor=DataExecutor(),
                        dispatcher=dispatcher)
    start_sync(window, core, start=not ephemeral)
    host = start_plugins(window, core, dev=dev)
    return window, host


def start_sync(window, core, *, start: bool = True):
    """The sync status bar, F5, the Sync page and the background worker; never fatal."""
    try:
        from crm_desktop.ui.sync_view import attach_sync

        return attach_sync(window, core, start=start)
    except Exception as exc:  # sync trouble must not stop the CRM
        log.exception("sync failed to start")
        window.show_status(f"Sync is not available: {exc}", 10000)
        return None


def start_plugins(window, core, *, dev: bool = False):
    """Start the plugin host and its Qt adapter; failures are logged and shown, never raised."""
    try:
        from crm_desktop.plugin_host.host import PluginHost
        from crm_desktop.ui.plugins.adapter import QtPluginAdapter
    except ImportError as exc:
        log.info("plugins not available: %s", exc)
        _add_plugins_page(window, None, f"The plugin host is not available in this build ({exc}).")
        return None
    try:
        from crm_desktop.ui.plugins.ui_facade import ui_factory

        host = PluginHost(core, core.home, dev=dev)
        # loads publish plugins' synced tables on the window's writer, not on the GUI thread
        executor = getattr(window, "executor", None)
        if executor is not None:
            host.set_writer(executor)
        host.set_ui_factory(ui_factory(window, host))  # ctx.ui: before any plugin activates
        window._plugin_adapter = QtPluginAdapter(window, host).start()
    except Exception as exc:  # a broken plugin system must not stop the CRM
        log.exception("plugins failed to start")
        window.show_status(f"Plugins failed to start: {exc}", 10000)
        _add_plugins_page(window, None, f"Plugins failed to start: {exc}")
        return None
    _add_plugins_page(window, host, None)
    window._plugin_host = host  # sync hands it the plugins it installed or removed (sync_view.attach_sync)
    return host


def _wait_for_plugin_loads(app, host, timeout: float = 30.0) -> None:
    """Let the event loop run until no plugin load waits for the writer (synced tables being published)."""
    deadline = time.monotonic() + timeout
    while host is not None and host.loading and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def shutdown(window, host) -> None:
    """Quit in order, while the window, the Qt application and the core still exist.

    The host stops first, so every active plugin's ``crm_deactivate`` runs (the hook
    reference promises it) and the adapter removes what the plugins built; then the
    window saves its layout and stops its background readers. Each step is guarded:
    a plugin that fails while deactivating must not keep the rest from shutting down.
    """
    sync = getattr(window, "_sync", None)
    if sync is not None:
        try:
            sync[0].stop()
        except Exception:
            log.exception("sync worker failed to stop")
    if host is not None:
        try:
            host.stop()
        except Exception:
            log.exception("plugin host failed to stop")
    adapter = getattr(window, "_plugin_adapter", None)
    if adapter is not None:
        try:
            adapter.stop()
        except Exception:
            log.exception("plugin adapter failed to stop")
    window.shutdown()


def _add_plugins_page(window, host, problem: str | None) -> None:
    from PySide6.QtWidgets import QLabel, QWidget

    widget: QWidget | None = None
    if host is not None:
        try:
            from crm_desktop.ui.plugin_admin import PluginAdminPanel

            widget = PluginAdminPanel(host, executor=getattr(window, "executor", None))
        except ImportError:
            problem = "The plugin admin panel is not available in this build."
        except Exception as exc:
            log.exception("plugin admin panel failed")
            problem = f"The plugin admin panel failed: {exc}"
    if widget is None:
        label = QLabel(problem or "No plugin host.")
        label.setObjectName("Muted")
        label.setWordWrap(True)
        label.setMargin(24)
        widget = label
    from crm_desktop.ui.resources import icon

    window.add_page("plugins", widget, "Plugin manager", icon=icon("plugins", "#c3c9dc", 18))


def _parse_size(text: str) -> tuple[int, int]:
    from crm_desktop.errors import CrmError

    try:
        w, h = (int(p) for p in text.lower().split("x"))
        if w < 320 or h < 240:
            raise ValueError
        return w, h
    except ValueError:
        raise CrmError(f"--size: {text!r} is invalid: must be WIDTHxHEIGHT like 1280x800, at least 320x240") from None


def _settle(app, window=None, seconds: float = 5.0) -> None:
    """Process events until background pages have loaded (or ``seconds`` passed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        busy = window is not None and any(v.model.busy() for v in window.lists.values())
        if not busy:
            time.sleep(0.03)
            app.processEvents()
            if window is None or not any(v.model.busy() for v in window.lists.values()):
                return
        time.sleep(0.01)


def show_view(window, name: str) -> None:
    """Bring ``name`` to the front; the list views also show their first record in the detail panel."""
    window.show_page(name)
    view = window.lists.get(name)
    if view is not None:
        if name == "deals":
            window.deals_tabs.setCurrentIndex(0)


def _select_first(window, app, name: str) -> None:
    view = window.lists.get(name)
    if view is None or name == "deals":
        return
    _settle(app, window)
    if view.model.rowCount() and view.model.record(0) is not None:
        view.table.selectRow(0)


def take_screenshot(window, app, name: str, path: Path, size: tuple[int, int]) -> None:
    window.resize(*size)
    window.show()
    show_view(window, name)
    _settle(app, window)
    _select_first(window, app, name)
    _settle(app, window)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        from crm_desktop.errors import CrmError

        raise CrmError(f"--screenshot: could not write {path}")


def smoke_test(window, app) -> dict[str, Any]:
    """Open every view and report what each shows; ``ok`` is False if one failed."""
    results: dict[str, Any] = {}
    ok = True
    for name in VIEWS:
        started = time.perf_counter()
        try:
            show_view(window, name)
            _settle(app, window, 10)
            page = window.page(name)
            entry: dict[str, Any] = {"ok": page is not None and window.current_page() == name}
            view = window.lists.get(name)
            if view is not None:
                entry["rows"] = view.model.rowCount()
            if name == "deals":
                entry["stages"] = len(window.board.columns)
        except Exception as exc:  # report, keep checking the other views
            log.exception("smoke test: view %s failed", name)
            entry = {"ok": False, "error": str(exc)}
        entry["ms"] = round((time.perf_counter() - started) * 1000, 1)
        ok = ok and entry["ok"]
        results[name] = entry
    return {"ok": ok, "views": results}


class ErrorLogCounter(logging.Handler):
    """Counts ERROR (and worse) log records: a smoke test that logged one has failed."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(f"{record.name}: {record.getMessage()}".splitlines()[0])
        except Exception:  # a bad log call must not break the count
            self.messages.append(record.name)


def run_gui(args) -> int:
    """Start the app (or take a screenshot, or run the smoke test) and return the exit code."""
    from crm_desktop.core import Core
    from crm_desktop.paths import Home
    from crm_desktop.ui.theme import apply_theme, follow_system

    screenshot = getattr(args, "screenshot", None)
    smoke = getattr(args, "smoke_test", False)
    headless = bool(screenshot or smoke)
    view = getattr(args, "view", "today") or "today"
    if screenshot and view not in VIEWS:
        from crm_desktop.errors import CrmError

        raise CrmError(f"--view: {view!r} is invalid: must be one of {', '.join(VIEWS)}")
    size = _parse_size(getattr(args, "size", "1280x800") or "1280x800")
    errors = ErrorLogCounter()
    if smoke:
        logging.getLogger().addHandler(errors)
    app = _application(headless)
    if smoke:  # a temporary home unless --home / CRM_DESKTOP_HOME name one (crm_desktop.smoke_checks)
        from crm_desktop.smoke_checks import smoke_home

        home = smoke_home(getattr(args, "home", None))
    else:
        home = Home.resolve(getattr(args, "home", None))
    core = Core.open(home)
    window = host = None
    try:
        window, host = build_window(core, ephemeral=headless, dev=getattr(args, "dev", False))
        if screenshot or smoke:
            _wait_for_plugin_loads(app, host)  # what they show and report includes every plugin's outcome
        # CRM_DESKTOP_THEME=light|dark|system overrides the saved choice (screenshots of both schemes)
        mode = os.environ.get("CRM_DESKTOP_THEME") or str(window.settings.value("theme", "system"))
        apply_theme(app, mode)
        if screenshot:
            take_screenshot(window, app, view, Path(screenshot), size)
            print(f"wrote {screenshot} ({view}, {size[0]}x{size[1]})")
            return 0
        if smoke:
            window.resize(*size)
            window.show()
            report = smoke_test(window, app)
            from crm_desktop.smoke_checks import add_environment_checks, text_lines

            add_environment_checks(report, core.home, host, getattr(window, "_plugin_adapter", None))
            if errors.messages:  # e.g. a plugin that failed or hung: the app carried on, the test fails
                report["ok"] = False
                report["errors"] = errors.messages
            if getattr(args, "json", False):
                print(json.dumps(report, indent=2))
            else:
                for name, entry in report["views"].items():
                    extra = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("ok",))
                    print(f"{'ok ' if entry['ok'] else 'FAIL'} {name:<11} {extra}")
                for line in text_lines(report):
                    print(line)
                for message in report.get("errors", [])[:5]:
                    print(f"FAIL logged error: {message}")
                print("smoke test passed" if report["ok"] else "smoke test FAILED")
            return 0 if report["ok"] else 1
        follow_system(app, window.theme_mode)
        window.show()
        return int(app.exec())
    finally:
        if window is not None:
            shutdown(window, host)
        core.close()
