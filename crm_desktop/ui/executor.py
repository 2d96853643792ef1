"""The one executor for the UI's database work: a single writer thread and a reader thread.

The UI thread never runs a query or a write (while an import holds the write lock, a save on
the UI thread would freeze the window for the whole busy timeout). Views hand a plain callable
to :meth:`DataExecutor.write` (saves, conversions, demo data, plugin migrations) or
:meth:`DataExecutor.read` (aggregates, duplicate checks); the callable runs on the executor's
thread and returns plain data (records are frozen dataclasses, never live ORM objects), which
comes back to ``done(result)`` — or ``failed(exc)`` — on the GUI thread.

- **One writer**, first in first out: writes happen in the order the user made them, and a
  write that finds the database locked by another connection (an import on its own worker)
  waits for it and retries, so a save made during an import completes when the import commits.
- **A long reader** for reads that take seconds and report progress (an export), so they do not
  hold up the quick reads behind them.
- **A reader**, first in first out, except that a job submitted with a ``key`` replaces the
  same key's job still waiting (the Today view asks again after every event; only the newest
  answer matters). Reads never wait for writers under WAL.

A ``context`` QObject (usually the asking widget) ties a job's callbacks to its life: when the
widget was deleted before the answer came, the answer is dropped.

The paged list models keep their own newest-first readers (:mod:`background`), which drop
pages scrolled past; everything else goes through here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from PySide6.QtCore import QObject, Qt, Signal
from shiboken6 import isValid

log = logging.getLogger(__name__)

#: how long a write keeps retrying while another connection holds the write lock
LOCKED_RETRY_SECONDS = 600.0


def is_locked_error(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database is busy", however it was wrapped."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if "database is locked" in text or "database is busy" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class _Job:
    fn: Callable[[], Any]
    done: Callable[[Any], None] | None
    failed: Callable[[BaseException], None] | None
    context: QObject | None
    key: Hashable | None = None
    retry_locked: bool = False
    label: str = ""
    submitted: float = field(default_factory=time.monotonic)


class _Lane:
    """One thread running its queue in order."""

    def __init__(self, name: str, deliver: Callable[[_Job, bool, Any], None]):
        self.name = name
        self._deliver = deliver
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"crm-ui-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        with self._cond:
            if self._stopped:
                log.debug("%s lane stopped: dropped %s", self.name, job.label)
                return
            if job.key is not None:
                for i, queued in enumerate(self._queue):
                    if queued.key == job.key:
                        self._queue[i] = job  # the newer question replaces the one still waiting
                        break
                else:
                    self._queue.append(job)
            else:
                self._queue.append(job)
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def stopped(self) -> bool:
        return self._stopped

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job = self._queue.popleft()
                self._busy = True
            try:
                ok, value = True, self._attempt(job)
            except BaseException as exc:  # handed to the UI; the lane keeps serving
                if not isinstance(exc, Exception):
                    raise
                log.info("%s job %s failed: %s", self.name, job.label, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                ok, value = False, exc
            finally:
                with self._cond:
                    self._busy = False
            self._deliver(job, ok, value)

    def _attempt(self, job: _Job) -> Any:
        deadline = time.monotonic() + LOCKED_RETRY_SECONDS
        pause = 0.05
        while True:
            try:
                return job.fn()
            except Exception as exc:
                # Another connection (an import on its worker) holds the write lock longer than
                # SQLite's busy timeout: the write did nothing yet, so wait and try again.
                if not (job.retry_locked and is_locked_error(exc)) or time.monotonic() > deadline or self._stopped:
                    raise
                log.info("%s job %s: database locked by another writer, retrying", self.name, job.label)
                time.sleep(pause)
                pause = min(pause * 2, 0.5)


class DataExecutor(QObject):
    """The UI's writer and reader threads (see the module docstring).

    ``write_started`` / ``write_finished`` let the window show that a save is waiting.
    """

    _delivered = Signal(object, bool, object)
    write_pending = Signal(int)  # writes queued or running, after each change

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._delivered.connect(self._on_delivered, Qt.ConnectionType.QueuedConnection)
        self._writes = 0
        self._writes_lock = threading.Lock()
        self._writer = _Lane("writer", self._post)
        self._reader = _Lane("reader", self._post)
        self._long = _Lane("long-reader", self._post)

    # -- submitting (GUI thread) -------------------------------------------------------------

    def write(self, fn: Callable[[], Any], *, done: Callable[[Any], None] | None = None,
              failed: Callable[[BaseException], None] | None = None, context: QObject | None = None,
              label: str = "write") -> None:
        """Run the write ``fn`` on the writer thread, after every write submitted before it."""
        with self._writes_lock:
            self._writes += 1
            pending = self._writes
        self.write_pending.emit(pending)
        self._writer.submit(_Job(fn, done, failed, context, retry_locked=True, label=label))

    def read(self, fn: Callable[[], Any], *, done: Callable[[Any], None] | None = None,
             failed: Callable[[BaseException], None] | None = None, context: QObject | None = None,
             key: Hashable | None = None, label: str = "read") -> None:
        """Run the query ``fn`` on the reader thread; a ``key`` replaces that key's waiting job."""
        self._reader.submit(_Job(fn, done, failed, context, key=key, label=label))

    def read_long(self, fn: Callable[[], Any], *, done: Callable[[Any], None] | None = None,
                  failed: Callable[[BaseException], None] | None = None, context: QObject | None = None,
                  label: str = "long read") -> None:
        """Run a long query ``fn`` (an export) on its own thread, so quick reads do not wait for it."""
        self._long.submit(_Job(fn, done, failed, context, label=label))

    def idle(self) -> bool:
        """Nothing queued or running, and every answer delivered (tests and benchmarks wait for this)."""
        with self._writes_lock:
            writes = self._writes
        return writes == 0 and self._writer.idle() and self._reader.idle() and self._long.idle()

    def writes_pending(self) -> int:
        with self._writes_lock:
            return self._writes

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads (queued jobs are dropped; a running write is waited for, up to ``timeout``)."""
        self._writer.stop(timeout)
        self._reader.stop(timeout)
        self._long.stop(timeout)

    # -- delivering (worker thread -> GUI thread) ------------------------------------------------

    def _post(self, job: _Job, ok: bool, value: Any) -> None:
        try:
            self._delivered.emit(job, ok, value)
        except RuntimeError:  # the executor was deleted while the job ran (window closing)
            pass

    def _on_delivered(self, job: _Job, ok: bool, value: Any) -> None:
        if job.retry_locked:
            with self._writes_lock:
                self._writes -= 1
                pending = self._writes
            self.write_pending.emit(pending)
        if job.context is not None and not isValid(job.context):
            return  # the widget that asked is gone
        callback = job.done if ok else job.failed
        if callback is None:
            if not ok:
                log.error("%s failed and nobody was told: %s", job.label, value)
            return
        try:
            callback(value)
        except Exception:  # a view's bug must not stop the other answers
            log.exception("handling the answer of %s failed", job.label)


class InlineExecutor:
    """Runs each job at once on the calling thread: for a view built on its own (tools, tests of a
    single widget). The main window always gives its views the :class:`DataExecutor`."""

    def write(self, fn, *, done=None, failed=None, context=None, label: str = "write") -> None:
        self._run(fn, done, failed, context)

    def read(self, fn, *, done=None, failed=None, context=None, key=None, label: str = "read") -> None:
        self._run(fn, done, failed, context)

    def read_long(self, fn, *, done=None, failed=None, context=None, label: str = "long read") -> None:
        self._run(fn, done, failed, context)

    def idle(self) -> bool:
        return True

    def writes_pending(self) -> int:
        return 0

    def stop(self, timeout: float = 0) -> None:
        pass

    @staticmethod
    def _run(fn, done, failed, context) -> None:
        try:
            result = fn()
        except Exception as exc:
            if failed is None:
                raise
            failed(exc)
            return
        if done is not None and (context is None or isValid(context)):
            done(result)
