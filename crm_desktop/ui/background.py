"""A background reader: runs service reads off the UI thread and hands results back by signal.

Jobs are plain callables returning plain data (records, counts). The newest job runs first:
when the user scrolls fast to the end, the page now on screen matters, not the ones flown
past, so older jobs beyond ``max_pending`` are dropped (the view asks again if it still
needs them). Results arrive on the UI thread through a queued Qt signal.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class BackgroundReader(QObject):
    """One worker thread running the newest submitted job first.

    ``finished(key, result)`` is emitted on the UI thread for each job that ran;
    ``failed(key, message)`` when a job raised.
    """

    finished = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, name: str, *, max_pending: int = 8, parent: QObject | None = None):
        super().__init__(parent)
        self._name = name
        self._max_pending = max_pending
        self._jobs: OrderedDict[Hashable, Callable[[], Any]] = OrderedDict()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"crm-ui-{name}", daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, job: Callable[[], Any]) -> None:
        """Queue ``job`` under ``key`` (a key already queued is replaced and moved to the front)."""
        with self._cond:
            self._jobs.pop(key, None)
            self._jobs[key] = job
            while len(self._jobs) > self._max_pending:
                self._jobs.popitem(last=False)  # the oldest wish is the least likely to be on screen
            self._cond.notify()

    def pending(self, key: Hashable) -> bool:
        with self._cond:
            return key in self._jobs

    def idle(self) -> bool:
        """True when nothing is queued or running (tests and benchmarks wait for this)."""
        with self._cond:
            return not self._jobs and not self._busy

    def clear(self) -> None:
        """Forget every queued job (a new query makes them all stale)."""
        with self._cond:
            self._jobs.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._jobs.clear()
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                key, job = self._jobs.popitem(last=True)
                self._busy = True
            try:
                result = job()
            except Exception as exc:  # reported to the UI; the worker keeps serving
                log.exception("background read %s/%r failed", self._name, key)
                self._emit(self.failed, key, str(exc))
            else:
                self._emit(self.finished, key, result)
            finally:
                with self._cond:
                    self._busy = False

    def _emit(self, signal, key, value) -> None:
        try:
            signal.emit(key, value)
        except RuntimeError:  # the QObject was deleted while the job ran (window closing)
            pass
