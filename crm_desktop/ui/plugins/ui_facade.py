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
- :meth:`~QtPluginUi.save_file` asks for a path with a file dialog and writes the file itself:
  into a temporary file next to the target (the plugin's ``write`` fills it), flushed to disk,
  then renamed over the target (``os.replace``), so the file is either the complete new one or
  the old one. The host's own file work runs as the core for the plugin tripwire (the user chose
  the folder); an ``open`` inside the plugin's ``write`` is still the plugin's.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence, TypeVar

from PySide6.QtCore import QObject, QStandardPaths, QThread, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from crm_desktop.errors import ValidationError
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_api.ui import UI_ENTITIES
from crm_desktop.plugin_host.tripwire import current_tripwire

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``PNG image (*.png *.PNG)`` -> the patterns inside the parentheses
_FILTER = re.compile(r"^[^()]*\(([^()]+)\)\s*$")
#: a new file's permissions (the temporary file is made private; the saved file is not)
NEW_FILE_MODE = 0o644


def _ask_save_path(parent: QWidget | None, title: str, start: str, filters: str) -> tuple[str, str]:
    """The Qt save dialog: (chosen path or "", chosen filter)."""
    return QFileDialog.getSaveFileName(parent, title, start, filters)


def _extension(name_filter: str) -> str | None:
    """``.csv`` for ``"CSV file (*.csv)"``; None for ``*`` or a filter without a plain ``*.ext``."""
    match = _FILTER.match(name_filter)
    for pattern in (match.group(1).split() if match else ()):
        if pattern.startswith("*.") and len(pattern) > 2 and not any(c in pattern[2:] for c in "*?[]"):
            return pattern[1:]
    return None


def write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Fill a temporary file next to ``target`` with ``write(file)``, flush it to disk and rename it over
    ``target``. OSError leaves ``target`` as it was and no temporary file behind; so does any exception
    of ``write`` (raised again)."""
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself on disk (POSIX); not possible everywhere
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


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
        #: the save dialog (tests replace it): ``(parent, title, start path, filters) -> (path, filter)``
        self.ask_save_path: Callable[[QWidget | None, str, str, str], tuple[str, str]] = _ask_save_path
        self._save_dir: Path | None = None

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

    def save_file(self, title: str, suggested_name: str, filters: Sequence[str],
                  write: Callable[[BinaryIO], object]) -> Path | None:
        if not self._poster.on_gui_thread():
            raise PluginError(f"plugin {self._plugin!r}: ctx.ui.save_file must be called on the GUI thread "
                              f"(from a panel, a menu action, or an on_done callback)")
        if not isinstance(title, str) or not title.strip():
            raise ValidationError("title", title, "must be a non-empty text", "ui")
        if not isinstance(suggested_name, str) or not Path(suggested_name).name.strip(". "):
            raise ValidationError("suggested_name", suggested_name, "must be a file name such as 'report.csv'", "ui")
        if isinstance(filters, str) or not isinstance(filters, Sequence) or not filters \
                or not all(isinstance(f, str) and _FILTER.match(f) for f in filters):
            raise ValidationError("filters", filters, "must be a list of name filters such as "
                                                      "['CSV file (*.csv)']", "ui")
        if not callable(write):
            raise ValidationError("write", write, "must be a callable taking a binary file", "ui")
        start = (self._save_dir or _documents()) / Path(suggested_name).name
        parent = self._window if isinstance(self._window, QWidget) else None
        chosen, chosen_filter = self.ask_save_path(parent, title, str(start), ";;".join(filters))
        if not chosen:
            return None
        target = Path(chosen)
        extension = _extension(chosen_filter or filters[0])
        if not target.suffix and extension:
            target = target.with_name(target.name + extension)
        core = current_tripwire()
        try:
            with core.core_call() if core is not None else contextlib.nullcontext():
                write_atomically(target, write)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = f"Could not save {target.name} in {target.parent}: {reason}."
            log.warning("plugin %s: %s", self._plugin, message)
            self._window.show_status(message, 8000)
            return None
        self._save_dir = target.parent
        return target

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


def _documents() -> Path:
    """Where a first save dialog opens: the user's documents folder (the home folder without one)."""
    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(folder) if folder and Path(folder).is_dir() else Path.home()


def ui_factory(window: Any, host: Any) -> Callable[[str], QtPluginUi]:
    """What ``PluginHost.set_ui_factory`` takes: a :class:`QtPluginUi` per plugin over ``window``."""
    return lambda plugin: QtPluginUi(window, host, plugin)
