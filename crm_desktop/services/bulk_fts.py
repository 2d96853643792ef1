"""Index many new rows at once, inside the bulk writer's transaction.

The FTS insert triggers (:mod:`crm_desktop.storage.fts`) index one row per
trigger call, which is five times slower than one ``INSERT ... SELECT`` over
all the new rows. :class:`DeferredIndex` therefore drops a table's insert
trigger *inside* the open write transaction, and :meth:`DeferredIndex.fill`
indexes every row added since (by rowid) with one statement built from the
trigger's own stored SQL, so it always matches the live schema version.
``close`` puts the trigger back, byte for byte. Because all of it happens in
one transaction, a crash or a rollback leaves the triggers exactly as they were;
other connections cannot write meanwhile (we hold the write lock).

If the stored trigger does not have the expected shape, nothing is dropped and
the trigger keeps indexing row by row (slower, still correct).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

#: a fill of at least this many rows runs with FTS5's automatic merging off (see :func:`_merges_after`)
QUIET_MERGE_ROWS = 10_000

_BODY = re.compile(
    r"BEGIN\s+(INSERT INTO (\w+)\s*\(rowid,[^)]*\)\s+SELECT new\.rowid,.*?)\s+WHERE new\.deleted_at IS NULL;\s*END\s*$",
    re.S | re.I)


class DeferredIndex:
    """Suspend ``<table>_fts_ai`` on a DBAPI connection that is inside a write transaction."""

    def __init__(self, conn: sqlite3.Connection, table: str):
        self.conn = conn
        self.table = table
        self.trigger = f"{table}_fts_ai"
        row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                           (self.trigger,)).fetchone()
        self.sql: str | None = row[0] if row else None
        match = _BODY.search(self.sql) if self.sql else None
        self.fill_sql: str | None = None
        self.fts_table = match.group(2) if match else None
        if match:
            body = match.group(1).replace("new.", "r.")
            self.fill_sql = f"{body} FROM {table} r WHERE r.rowid > ? AND r.deleted_at IS NULL"
        else:
            log.warning("search trigger %s has an unexpected shape; indexing row by row", self.trigger)
        self.after = conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]
        if self.fill_sql is not None:
            conn.execute(f"DROP TRIGGER {self.trigger}")

    def fill(self) -> None:
        """Index the rows added since the last fill."""
        if self.fill_sql is None:
            return
        top = self.conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {self.table}").fetchone()[0]
        if top - self.after >= QUIET_MERGE_ROWS:
            assert self.fts_table is not None  # found with fill_sql (__init__)
            with _merges_after(self.conn, self.fts_table):
                self.conn.execute(self.fill_sql, (self.after,))
            self.after = top
        elif top > self.after:
            self.conn.execute(self.fill_sql, (self.after,))
            self.after = top

    def close(self) -> None:
        """Index what is left and put the trigger back."""
        if self.fill_sql is None:
            return
        self.fill()
        assert self.sql is not None  # fill_sql was made from it (__init__)
        self.conn.execute(self.sql)
        self.fill_sql = None


@contextmanager
def _merges_after(conn: sqlite3.Connection, fts_table: str) -> Iterator[None]:
    """Run a large fill of ``fts_table`` with FTS5's ``automerge`` at 0, then put the table's own
    setting back (inside the same transaction, so a rollback or a crash leaves it as it was).

    With automerge on, FTS5 merges the index's segments a little after every flush of its
    in-memory buffer, merging the same new entries again and again while 200k rows go in;
    with it off, segments are merged only when ``crisismerge`` (16) of them pile up on a level.
    Measured on 200k contacts: the fill takes ~25% less CPU (1.8 against 2.4 s) and leaves 14
    segments instead of 9; searches stay as fast (bench/README.md), and the merging goes on
    with the first later writes, as the restored setting says. The rows and what a search
    finds are the same either way."""
    row = conn.execute(f"SELECT v FROM {fts_table}_config WHERE k = 'automerge'").fetchone()
    before = int(row[0]) if row is not None else 4  # FTS5's default
    conn.execute(f"INSERT INTO {fts_table}({fts_table}, rank) VALUES ('automerge', 0)")
    try:
        yield
    finally:
        conn.execute(f"INSERT INTO {fts_table}({fts_table}, rank) VALUES ('automerge', ?)", (before,))
