"""Sync in the background, Qt-free: on demand, every few minutes, and on a nudge from the server.

:class:`SyncWorker` owns two daemon threads. The *sync thread* waits for a
request (``request_sync()``: F5, the Sync button), the periodic interval, or a
nudge, and runs one sync at a time; network failures are retried with backoff
(1 s, 2 s, 4 s ... capped), and while the server cannot be reached the state is
``offline``, reported once, not as a stream of errors. The *listener thread*
holds ``GET /api/v1/sync/events`` open while online and asks for a sync when
the server says there is something new (a teammate's change shows within a
couple of seconds).

Every change of state is handed to ``on_status`` as a :class:`SyncStatus`
(plain data) from a worker thread; the UI re-emits it on its own thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from crm_desktop.auth.session import SignedOut
from crm_desktop.errors import CrmError
from crm_desktop.sync.engine import Progress, SyncReport, backoff_delays
from crm_desktop.sync.http import Offline, SyncError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0


@dataclass(frozen=True)
class SyncStatus:
    """What the status bar shows. ``state``: signed_out | offline | idle | syncing | error."""

    state: str
    pending: int = 0
    conflicts: int = 0
    problems: int = 0
    last_synced: str | None = None
    phase: str | None = None
    done: int = 0
    total: int | None = None
    message: str = ""
    report: SyncReport | None = None


class SyncWorker:
    def __init__(self, service, *, on_status: Callable[[SyncStatus], None] = lambda s: None,
                 interval: float = DEFAULT_INTERVAL, listen: bool = True,
                 sleep_backoff: Callable[[], Iterator[float]] | None = None):
        self.service = service
        self.on_status = on_status
        self.interval = interval
        self.listen = listen
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._online = threading.Event()
        self._threads: list[threading.Thread] = []
        self._delays = sleep_backoff() if sleep_backoff else backoff_delays()
        self.status = self._snapshot("idle" if service.account() else "signed_out")

    # -- control --------------------------------------------------------------------------------

    def start(self) -> "SyncWorker":
        sync_thread = threading.Thread(target=self._run, name="crm-sync", daemon=True)
        self._threads.append(sync_thread)
        sync_thread.start()
        if self.listen:
            listener = threading.Thread(target=self._listen, name="crm-sync-events", daemon=True)
            self._threads.append(listener)
            listener.start()
        return self

    def request_sync(self) -> None:
        """Sync as soon as possible (F5, the Sync button, a nudge)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            # the listener may sit in a blocking read of the event stream: it is a daemon thread
            # and ends with its connection, so do not hold up quitting for it
            thread.join(timeout if thread.name == "crm-sync" else 0.2)

    # -- the sync thread ----------------------------------------------------------------------

    def _run(self) -> None:
        self._publish(self._snapshot("idle" if self.service.account() else "signed_out"))
        self._wake.set()  # one sync at start
        wait = self.interval
        while not self._stop.is_set():
            self._wake.wait(wait)
            if self._stop.is_set():
                return
            self._wake.clear()
            wait = self._sync_once()

    def _sync_once(self) -> float:
        """One sync; returns how long to wait before the next one unless asked."""
        if self.service.account() is None:
            self._publish(self._snapshot("signed_out", message="Not signed in"))
            return self.interval
        self._publish(self._snapshot("syncing", phase="push"))
        try:
            engine = self.service.engine(progress=self._progress)
            report = engine.sync()
        except SignedOut as exc:
            self._online.clear()
            self._publish(self._snapshot("signed_out", message=str(exc)))
            return self.interval
        except CrmError as exc:
            self._publish(self._snapshot("error", message=str(exc)))
            return next(self._delays)
        except Exception as exc:  # a bug must not kill the thread: show it and try later
            log.exception("sync failed")
            self._publish(self._snapshot("error", message=f"sync failed: {exc}"))
            return next(self._delays)
        if report.offline:
            self._online.clear()
            self._publish(self._snapshot("offline", message=report.errors[0] if report.errors else "", report=report))
            return next(self._delays)
        if report.errors:
            self._publish(self._snapshot("error", message=report.errors[0], report=report))
            return next(self._delays)
        self._delays = backoff_delays()
        self._online.set()
        self._publish(self._snapshot("idle", report=report))
        return self.interval

    def _progress(self, progress: Progress) -> None:
        self._publish(replace(self.status, state="syncing", phase=progress.phase, done=progress.done,
                              total=progress.total))

    def _snapshot(self, state: str, **kwargs) -> SyncStatus:
        try:
            status = self.service.status()
        except Exception:  # the database is closing
            status = {"pending": 0, "conflicts": 0, "problems": 0, "last_success": None}
        return SyncStatus(state, status["pending"], status["conflicts"], status["problems"],
                          status["last_success"], **kwargs)

    def _publish(self, status: SyncStatus) -> None:
        self.status = status
        try:
            self.on_status(status)
        except Exception:
            log.exception("the sync status listener failed")

    # -- the nudge listener -----------------------------------------------------------------

    def _listen(self) -> None:
        while not self._stop.is_set():
            if not self._online.wait(1.0):
                continue
            try:
                client = self.service.client()
                for event in client.events(stop=self._stop.is_set):
                    if event == "changes":
                        self.request_sync()
                    elif event == "signed_out":
                        self._online.clear()
                        self.request_sync()  # shows the signed-out state
                        break
            except (Offline, SyncError, SignedOut, CrmError) as exc:
                log.debug("event stream ended: %s", exc)
                self._online.clear()
            except Exception:
                log.exception("event stream failed")
            self._stop.wait(1.0)
