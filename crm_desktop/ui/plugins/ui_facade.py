"""``ctx.ui`` in the desktop app: :class:`QtPluginUi`, the Qt side of :class:`~crm_desktop.plugin_api.UiFacade`.

The UI composition root (``app.start_plugins``) installs :func:`ui_factory` on the plugin
host; each plugin gets its own :class:`QtPluginUi` on its first use of ``ctx.ui``, closed
when the plugin unloads (its background results are dropped from then on).

- Every method may be called from any thread; work that touches Qt is posted to the GUI
  thread. :meth:`~QtPluginUi.confirm` asks the user, so it must run on the GUI thread.
- :meth:`~QtPluginUi.run_in_background` runs ``fn`` on a daemon thread of its own (a slow
  HTTP call of a plugin must not hold up the app's database reader), in a copy of the
  caller's context (so ``ctx.acting_as_agent`` carries over), and hands the result or the
  exception back on the GUI thread. The callbacks are plugin code: they run in the plugin's
  guard, so one that raises marks the plugin failed and nothing else.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any, Callable, TypeVar

from PySide6.QtCore import QObject, QThread, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from crm_desktop.errors import ValidationError
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_api.ui import UI_ENTITIES

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Poster(QObject):
    """Runs callables on the GUI thread (the thread this object lives in)."""

    posted = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def on_gui_thread(self) -> bool:
        return QThread.currentThread() == self.thread()

    def post(self, fn: Callable[[], object]) -> None:
        if self.on_gui_thread():
            fn()
            return
        try:
            self.posted.emit(fn)
        except RuntimeError:  # the window is gone
            log.debug("ui facade deleted: dropped %r", fn)

    def _run(self, fn: Callable[[], object]) -> None:
        fn()


class QtPluginUi:
    """``ctx.ui`` of plugin ``plugin`` over main window ``window`` (``open_record``, ``show_status``)."""

    def __init__(self, window: Any, host: Any, plugin: str):
        self._window = window
        self._host = host
        self._plugin = plugin
        self._closed = False
        self._poster = _Poster(window if isinstance(window, QObject) else None)
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    # -- the facade ----------------------------------------------------------------------

    def open_record(self, entity: str, record_id: str) -> None:
        if entity not in UI_ENTITIES:
            raise ValidationError("entity", entity, f"must be one of {', '.join(UI_ENTITIES)}", "ui")
        if not isinstance(record_id, str) or not record_id:
            raise ValidationError("record_id", record_id, "must be a record id", entity)
        self._post(lambda: self._window.open_record(entity, record_id))

    def show_status(self, message: str, timeout_ms: int = 4000) -> None:
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms < 0:
            raise ValidationError("timeout_ms", timeout_ms, "must be a whole number of milliseconds, 0 or more", "ui")
        text = str(message).replace("\n", " ")[:500]
        self._post(lambda: self._window.show_status(text, timeout_ms))

    def run_in_background(self, fn: Callable[[], T], *, on_done: Callable[[T], object] | None = None,
                          on_error: Callable[[BaseException], object] | None = None) -> None:
        if not callable(fn):
            raise PluginError(f"plugin {self._plugin!r}: ctx.ui.run_in_background needs a callable, got {fn!r}")
        if self._closed:
            raise PluginError(f"plugin {self._plugin!r}: ctx.ui is closed (the plugin was unloaded)")
        context = contextvars.copy_context()

        def work() -> None:
            try:
                result = context.run(fn)
            except BaseException as exc:  # plugin code: reported to the plugin, never raised here
                error = exc  # `exc` is unbound when the except block ends, before the GUI thread runs this
                self._post(lambda: self._failed(error, on_error))
                return
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())
            if on_done is not None:
                self._post(lambda: self._host.guard(self._plugin, "ctx.ui.run_in_background on_done", on_done, result))

        thread = threading.Thread(target=work, name=f"crm-plugin-{self._plugin}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def confirm(self, title: str, text: str) -> bool:
        if not self._poster.on_gui_thread():
            raise PluginError(f"plugin {self._plugin!r}: ctx.ui.confirm must be called on the GUI thread "
                              f"(from a panel, a menu action, or an on_done callback)")
        parent = self._window if isinstance(self._window, QWidget) else None
        answer = QMessageBox.question(parent, str(title), str(text),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- life ------------------------------------------------------------------------------

    def close(self) -> None:
        """The plugin unloads: drop every callback still to come (its threads run out on their own)."""
        self._closed = True

    def busy(self) -> bool:
        """True while background work of this plugin is running (tests wait for it)."""
        with self._lock:
            return bool(self._threads)

    def _post(self, fn: Callable[[], object]) -> None:
        def run() -> None:
            if not self._closed:
                fn()

        self._poster.post(run)

    def _failed(self, exc: BaseException, on_error: Callable[[BaseException], object] | None) -> None:
        if on_error is not None:
            self._host.guard(self._plugin, "ctx.ui.run_in_background on_error", on_error, exc)
            return
        log.error("plugin %s: background work raised %s: %s", self._plugin, type(exc).__name__, exc)
        self._window.show_status(f"Plugin {self._plugin}: background work failed: {exc}", 8000)


def ui_factory(window: Any, host: Any) -> Callable[[str], QtPluginUi]:
    """What ``PluginHost.set_ui_factory`` takes: a :class:`QtPluginUi` per plugin over ``window``."""
    return lambda plugin: QtPluginUi(window, host, plugin)
