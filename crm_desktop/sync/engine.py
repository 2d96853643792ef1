"""One sync: push the outbox in batches, then pull until there is nothing more.

Every step commits on its own and can be repeated, so a sync killed at any
point (``kill -9``, a dropped connection, a server restart) resumes without loss
or duplicates when it runs again:

* push: a batch is read, sent, and its answers are applied in one local
  transaction. If the answers never arrive, the same mutations are sent again
  with the same ids and the server answers ``duplicate`` (with the original
  answer, which is then applied as if it had arrived the first time);
* pull: each page and the cursor after it commit in one transaction
  (:mod:`crm_desktop.sync.applier`), so a page is applied once or not at all.

A mutation answered ``rejected`` stays in the outbox marked rejected, with the
server's reason, for the rep to resend or discard (:mod:`crm_desktop.sync.resolve`);
the mutations behind it carry on.

After each sync the engine publishes ``sync.finished`` on the app's event bus (when it was given
one) with ``{pushed, pulled, conflicts, rejected, ok}``: the records it pulled were written
without the services' ``<entity>.*`` events, so views and plugins (``crm_event``) that show
numbers refresh on this one. A sync that could not reach the server and moved nothing publishes
nothing (the worker retries those every few seconds while offline).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from crm_desktop.domain.events import Event
from crm_desktop.errors import CrmError
from crm_desktop.storage import plugin_sync as plugin_tables
from crm_desktop.storage.base import utcnow
from crm_desktop.storage.changes import db_time
from crm_desktop.storage.dbapi import sqlite_connection
from crm_desktop.storage.engine import Database
from crm_desktop.sync import local_writes, outbox, state
from crm_desktop.sync.applier import SYNC_ACTOR, PullApplier
from crm_desktop.sync.http import Offline, ServerFailed
from crm_desktop.sync.protocol import (
    PluginSchemasRequest,
    PluginTableSchema,
    MAX_PULL_LIMIT,
    MAX_PUSH_BATCH,
    ConflictKind,
    MutationResult,
    MutationStatus,
)

log = logging.getLogger(__name__)

#: the event published after each sync (docs/plugin-hooks.md, crm_event)
SYNC_FINISHED = "sync.finished"
#: ``Event.source`` of :data:`SYNC_FINISHED`
SYNC_SOURCE = "sync"

PUSH_BATCH = MAX_PUSH_BATCH
PULL_LIMIT = 2000
FIRST_SYNC_PULL_LIMIT = MAX_PULL_LIMIT


@dataclass
class SyncReport:
    """What one sync did: the figures ``crm-desktop sync`` prints."""

    pushed: int = 0
    pulled: int = 0
    conflicts: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    offline: bool = False
    started_at: str = ""
    finished_at: str = ""
    entities: list[str] = field(default_factory=list)
    #: installed/updated/removed/refused/unchanged/errors of plugin distribution (:mod:`crm_desktop.plugin_host.distribution`)
    plugins: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """A step of a running sync, for a status bar: ``phase`` push|pull, counts so far."""

    phase: str
    done: int
    total: int | None = None


class SyncEngine:
    """Runs syncs of one database against one server (through a :class:`SyncClient`)."""

    def __init__(self, db: Database, client, *, push_batch: int = PUSH_BATCH, pull_limit: int = PULL_LIMIT,
                 progress: Callable[[Progress], None] | None = None, plugin_sync=None, events=None):
        self.db = db
        #: the app's event bus (``publish(Event)``), for :data:`SYNC_FINISHED`; None: publish nothing
        self.events = events
        self.plugin_sync = plugin_sync
        self.client = client
        self.push_batch = push_batch
        self.pull_limit = pull_limit
        self.progress = progress or (lambda _p: None)
        self.applier = PullApplier(db)

    def sync(self) -> SyncReport:
        """Push, then pull. Network trouble ends the run with ``offline``/``errors`` set, not raised."""
        report = SyncReport(started_at=_now_iso())
        try:
            self.publish_schemas()
            self.push(report)
            self.pull(report)
            self.plugins(report)
        except Offline as exc:
            report.offline = True
            report.errors.append(str(exc))
        except ServerFailed as exc:
            report.errors.append(str(exc))
        report.finished_at = _now_iso()
        self._remember(report)
        self._announce(report)
        return report

    def _announce(self, report: SyncReport) -> None:
        """Publish :data:`SYNC_FINISHED` (not for a sync that never reached the server and moved nothing)."""
        if self.events is None or (report.offline and not (report.pushed or report.pulled or report.conflicts)):
            return
        payload = {"pushed": report.pushed, "pulled": report.pulled, "conflicts": report.conflicts,
                   "rejected": report.rejected, "ok": report.ok}
        try:
            self.events.publish(Event(SYNC_FINISHED, payload, SYNC_SOURCE))
        except Exception:  # a listener's failure is not the sync's: it is done and remembered
            log.exception("publishing %s failed", SYNC_FINISHED)

    # -- synced plugin tables ------------------------------------------------------------------

    def publish_schemas(self) -> None:
        """Tell the server the schemas of the synced plugin tables this database has (before the push
        that may carry their records); a database without any sends nothing."""
        with self.db.read_connection() as c:
            tables = plugin_tables.load(sqlite_connection(c))
        if not tables:
            return
        request = PluginSchemasRequest(schemas=[
            PluginTableSchema(entity=t.entity, plugin=t.plugin, plugin_version=t.plugin_version, schema=t.schema)
            for t in tables])
        self.client.publish_schemas(request)

    # -- push ---------------------------------------------------------------------------------

    def push(self, report: SyncReport) -> None:
        total = self.pending_count()
        after = 0
        while True:
            with self.db.read_connection() as c:
                batch = outbox.pending_wire(sqlite_connection(c), self.push_batch, after)
            if not batch:
                return
            response = self.client.push(batch, pending=total)
            self._acknowledge(batch, response.results, report)
            after = batch[-1].mutation_id
            self.progress(Progress("push", report.pushed + report.rejected + report.conflicts, total))

    def _acknowledge(self, batch: list[outbox.PendingMutation], results: list[MutationResult],
                     report: SyncReport) -> None:
        sent = {e.mutation_id: e for e in batch}
        with self.db.transaction(actor=SYNC_ACTOR, audit_action="sync-push", replicate=False,
                                 foreign_keys=False) as scope:
            conn = scope.tx.dbapi_connection
            for result in results:
                entry = sent.get(result.mutation_id)
                if entry is None:
                    continue
                if result.status is MutationStatus.DUPLICATE:
                    # applied before, its answer lost (a crash or a dropped connection): use the original
                    result = result.original or MutationResult(mutation_id=result.mutation_id,
                                                               status=MutationStatus.APPLIED)
                if result.status is MutationStatus.REJECTED:
                    conn.execute("UPDATE sync_outbox SET status = ?, reason = ?, message = ? WHERE id = ?",
                                 (outbox.REJECTED, result.reason.value if result.reason else None,
                                  result.message, entry.mutation_id))
                    report.rejected += 1
                    continue
                conn.execute("DELETE FROM sync_outbox WHERE id = ?", (entry.mutation_id,))
                if result.status is MutationStatus.CONFLICT:
                    self._keep_conflict(conn, entry, result)
                    report.conflicts += 1
                else:
                    report.pushed += 1

    def _keep_conflict(self, conn, entry: outbox.PendingMutation, result: MutationResult) -> None:
        """Store the conflict for the rep and show the server's value meanwhile (local = server)."""
        fields = [c.model_dump(mode="json") for c in result.conflicts]
        conn.execute("INSERT INTO sync_conflicts (entity, record_id, kind, fields, theirs, version, mutation_id, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (entry.entity, entry.record_id, (result.conflict or ConflictKind.FIELDS).value,
                      json.dumps(fields), json.dumps(result.theirs) if result.theirs is not None else None,
                      result.version, entry.mutation_id, db_time(utcnow())))
        later = [e for e in outbox.for_records(conn, [entry.record_id]).get(entry.record_id, [])
                 if e.mutation_id > entry.mutation_id]
        touched_later = {name for e in later for name in e.fields}
        if result.conflict is ConflictKind.DELETED:
            if not later:
                local_writes.tombstone(conn, entry.entity, entry.record_id, db_time(utcnow()))
        elif result.conflict is ConflictKind.EDITED:
            if not later:
                local_writes.restore(conn, entry.entity, entry.record_id)
                if result.theirs:
                    local_writes.write_fields(conn, entry.entity, entry.record_id, result.theirs)
        else:
            theirs = {c.field: c.theirs for c in result.conflicts if c.field not in touched_later}
            if theirs:
                local_writes.write_fields(conn, entry.entity, entry.record_id, theirs)

    # -- pull ---------------------------------------------------------------------------------

    def pull(self, report: SyncReport) -> None:
        """Pull pages until ``has_more`` is false, fetching the next page while this one is applied.

        Each page still commits with its own cursor in one transaction, in order; the page fetched
        ahead (with the cursor of the page being applied) is only applied after that one
        committed, and is simply dropped if applying fails or the process dies: the next sync
        starts again from the stored cursor. A page that comes back full means the client is
        catching up (a first sync, a long time offline), so the next one asks for the largest page
        the server serves."""
        entities: set[str] = set(report.entities)
        pending = self.pending_count()  # reported with the pull: what is left after the push (admin console)
        with self.db.read_connection() as c:
            cursor = state.cursor(sqlite_connection(c))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-pull") as fetcher:
            ahead = fetcher.submit(self.client.pull, cursor,
                                   FIRST_SYNC_PULL_LIMIT if cursor == "0" else self.pull_limit, pending)
            try:
                while True:
                    page = ahead.result()
                    if page.has_more:
                        ahead = fetcher.submit(self.client.pull, page.cursor, FIRST_SYNC_PULL_LIMIT, pending)
                    result = self.applier.apply(page)
                    report.pulled += result.applied + result.removed
                    report.conflicts += result.conflicts
                    entities |= result.entities
                    self.progress(Progress("pull", report.pulled))
                    if not page.has_more:
                        break
            finally:
                ahead.cancel()
        report.entities = sorted(entities)

    # -- plugins ------------------------------------------------------------------------------

    def plugins(self, report: SyncReport) -> None:
        """After the pull: install, update and remove published plugins (no plugin code runs)."""
        if self.plugin_sync is None:
            return
        self.progress(Progress("plugins", 0))
        try:
            result = self.plugin_sync.run(self.client)
        except (Offline, ServerFailed):
            raise
        except (CrmError, OSError) as exc:
            log.exception("plugin distribution failed")
            report.plugins = {"installed": [], "updated": [], "removed": [], "refused": [], "unchanged": [],
                              "errors": [f"plugin distribution failed: {exc}"]}
            return
        report.plugins = result.as_dict()

    # -- status -------------------------------------------------------------------------------

    def pending_count(self) -> int:
        with self.db.read_connection() as c:
            return outbox.counts(sqlite_connection(c))["pending"]

    def _remember(self, report: SyncReport) -> None:
        summary = {k: v for k, v in report.as_dict().items() if k != "entities"}
        if report.ok:
            summary["last_success_at"] = report.finished_at
        else:
            with self.db.read_connection() as c:
                previous = state.last_sync(sqlite_connection(c)) or {}
            if previous.get("last_success_at"):
                summary["last_success_at"] = previous["last_success_at"]
        with self.db.transaction(actor=SYNC_ACTOR, replicate=False) as scope:
            state.put(scope.tx.dbapi_connection, state.LAST_SYNC, json.dumps(summary))


def status(db: Database) -> dict:
    """Pending changes, the last sync, open conflicts and problems (``crm-desktop sync status``)."""
    with db.read_connection() as c:
        conn = sqlite_connection(c)
        counts = outbox.counts(conn)
        conflicts = conn.execute("SELECT count(*) FROM sync_conflicts").fetchone()[0]
        account = state.account(conn)
        last = state.last_sync(conn)
    return {
        "server": account.server_url if account else None,
        "user": account.username if account else None,
        "pending": counts["pending"],
        "problems": counts["rejected"],
        "conflicts": conflicts,
        "last_sync": last.get("finished_at") if last else None,
        "last_success": last.get("last_success_at") if last else None,
        "last_errors": last.get("errors", []) if last else [],
        "offline": bool(last and last.get("offline")),
    }


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def backoff_delays(first: float = 1.0, factor: float = 2.0, cap: float = 60.0) -> Iterator[float]:
    """1, 2, 4, ... seconds, capped: the waits between retries of a sync that could not reach the server."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


def sync_with_retries(engine: SyncEngine, attempts: int = 3, sleep: Callable[[float], None] = time.sleep) -> SyncReport:
    """Sync, retrying network failures with backoff (``attempts`` in all)."""
    delays = backoff_delays()
    report = engine.sync()
    for _ in range(attempts - 1):
        if report.ok or not (report.offline or report.errors):
            break
        sleep(next(delays))
        retry = engine.sync()
        retry.pushed += report.pushed
        retry.pulled += report.pulled
        retry.conflicts += report.conflicts
        retry.rejected += report.rejected
        retry.plugins = retry.plugins or report.plugins
        report = retry
    return report
