"""The nudge: tell open clients, within a second, that there is something to pull.

Each worker process runs one :class:`ChangeWatcher` thread that polls the change
log's tail every ``interval`` seconds (one index-only query, however many clients
are connected) and wakes every server-sent-events stream of that worker. Polling
the database rather than signalling in-process is what makes it work across
several workers and hosts.

On PostgreSQL a new row is not pullable until every older transaction has ended
(see :mod:`crm_server.changelog`), so the watcher remembers the highest xid it has
seen new rows at and nudges once the snapshot's xmin has passed it; a client
nudged earlier would pull nothing and then wait.

A nudge carries no data: clients pull, and the pull applies their scope.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from sqlalchemy import func, select, text

from crm_server.db import Database
from crm_server.models import Change

log = logging.getLogger(__name__)


class Broadcaster:
    """Hands a generation number to asyncio waiters; set from any thread."""

    def __init__(self) -> None:
        self.generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def notify(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, generation: int, timeout: float) -> int:
        """Return once the generation is past ``generation`` or after ``timeout`` seconds."""
        if self.generation > generation or self._event is None:
            return self.generation
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.generation


class ChangeWatcher(threading.Thread):
    def __init__(self, db: Database, broadcaster: Broadcaster, interval: float = 0.25):
        super().__init__(name="crm-change-watcher", daemon=True)
        self.db = db
        self.broadcaster = broadcaster
        self.interval = interval
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        last_seq: int | None = None
        # xids that new rows were seen at, oldest first: nudge as soon as xmin passes one
        # (not the newest, which a busy server might never let xmin pass)
        waiting: list[int] = []
        while not self._halt.wait(self.interval):
            try:
                with self.db.engine.connect() as conn:
                    if self.db.is_sqlite:
                        seq = conn.scalar(select(func.max(Change.seq))) or 0
                        if last_seq is not None and seq != last_seq:
                            self.broadcaster.notify()
                        last_seq = seq
                        continue
                    row = conn.execute(select(
                        func.max(Change.seq), func.max(Change.xid),
                        text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"))).one()
                    seq, max_xid, xmin = row[0] or 0, row[1] or 0, row[2]
                    conn.rollback()
                if last_seq is not None and seq != last_seq and (not waiting or waiting[-1] < max_xid):
                    waiting.append(max_xid)
                last_seq = seq
                if waiting and xmin > waiting[0]:
                    waiting = [x for x in waiting if x >= xmin]
                    self.broadcaster.notify()
            except Exception:  # the database may be restarting; keep watching
                log.warning("change watcher: polling failed", exc_info=True)
