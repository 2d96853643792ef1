"""``crm-desktop --dev``: reload a plugin when one of its files changes.

A :class:`QFileSystemWatcher` watches every plugin folder (and its
subfolders) and the ``.py``/``.json`` files in them. Editors save in bursts
(write a temp file, rename, touch), so changes are collected for a short
quiet period (:data:`DEBOUNCE_MS`) and then each changed plugin is reloaded
once through ``host.reload``. Whether a plugin really changed is decided by
comparing the size and mtime of its ``.py``/``.json`` files, which ignores the
``__pycache__`` churn that importing the plugin itself causes — otherwise
every reload would trigger the next one.

Keeping an open panel open across the reload is the adapter's job
(:class:`~crm_desktop.ui.plugins.adapter.QtPluginAdapter`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

if TYPE_CHECKING:
    from crm_desktop.ui.plugins.seams import PluginHostView

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300
WATCHED_SUFFIXES = (".py", ".json")
_SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"}

Snapshot = dict[str, tuple[int, int]]


def snapshot(folder: Path) -> Snapshot:
    """``{relative path: (mtime_ns, size)}`` of the watched files under ``folder``."""
    out: Snapshot = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(WATCHED_SUFFIXES):
                path = Path(root) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                out[str(path.relative_to(folder))] = (st.st_mtime_ns, st.st_size)
    return out


class PluginWatcher(QObject):
    """Watches the folders of the host's plugins and reloads a plugin after its files change."""

    #: emitted with the plugin name after each reload the watcher started
    reloaded = Signal(str)

    def __init__(self, host: PluginHostView, parent: QObject | None = None, *, debounce_ms: int = DEBOUNCE_MS):
        super().__init__(parent)
        self.host = host
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._on_change)
        self._watcher.directoryChanged.connect(self._on_change)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._reload_changed)
        self._folders: dict[str, Path] = {}      # plugin -> folder
        self._snapshots: dict[str, Snapshot] = {}
        self._touched: set[str] = set()           # plugins with a change signal since the last check

    def start(self) -> "PluginWatcher":
        """Watch every plugin the host knows now."""
        for name, record in list(self.host.records.items()):
            if Path(record.path).is_dir():
                self.watch(name, Path(record.path))
        return self

    def stop(self) -> None:
        """Stop watching (pending changes are dropped)."""
        self._timer.stop()
        paths = self._watcher.files() + self._watcher.directories()
        if paths:
            self._watcher.removePaths(paths)
        self._folders.clear()

    def watch(self, name: str, folder: Path) -> None:
        """Watch ``folder`` (recursively) as the files of plugin ``name``."""
        self._folders[name] = folder.resolve()
        self._snapshots[name] = snapshot(self._folders[name])
        self._add_paths(self._folders[name])

    def watched_paths(self) -> list[str]:
        """Every file and folder being watched (for diagnostics and tests)."""
        return sorted(self._watcher.files() + self._watcher.directories())

    def _add_paths(self, folder: Path) -> None:
        # QFileSystemWatcher is not recursive: add each subfolder (to see new files)
        # and each watched file (to see edits in place).
        wanted: list[str] = []
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
            wanted.append(root)
            wanted.extend(str(Path(root) / f) for f in files if f.endswith(WATCHED_SUFFIXES))
        current = set(self._watcher.files()) | set(self._watcher.directories())
        new = [p for p in wanted if p not in current]
        if new:
            self._watcher.addPaths(new)

    def _owner(self, path: str) -> str | None:
        target = Path(path)
        for name, folder in self._folders.items():
            if target == folder or folder in target.parents:
                return name
        return None

    def _on_change(self, path: str) -> None:
        name = self._owner(path)
        if name is None:
            return
        self._touched.add(name)
        self._timer.start()  # restart: wait until the editor has finished saving

    def _reload_changed(self) -> None:
        touched, self._touched = self._touched, set()
        for name in sorted(touched):
            folder = self._folders.get(name)
            if folder is None:
                continue
            if not folder.is_dir():
                log.info("plugin folder %s is gone; no longer watching %s", folder, name)
                self._folders.pop(name, None)
                continue
            now = snapshot(folder)
            # editors that save by rename drop the file from the watcher: add it back
            self._add_paths(folder)
            if now == self._snapshots.get(name):
                continue  # only bytecode or other files changed
            self._snapshots[name] = now
            log.info("files of plugin %s changed; reloading", name)
            try:
                self.host.reload(name)
            except Exception:  # a broken edit must not stop the watcher; the host marks the plugin failed
                log.exception("reloading plugin %s after a file change failed", name)
            self.reloaded.emit(name)
