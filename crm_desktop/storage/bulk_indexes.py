"""Rebuild a table's secondary indexes once after a large bulk insert, inside its transaction.

Inserting 200k rows into a table with seven secondary indexes updates every index
row by row, in random key order: most of a bulk insert's time and half-filled index
pages. ``CREATE INDEX`` over the finished table sorts once and writes packed pages,
several times faster. :class:`SuspendedIndexes` therefore drops the table's plain
secondary indexes inside the open write transaction when the insert is large
against the table, and recreates them from their own stored SQL when the block
ends, before anything else reads the table or the transaction commits. A rollback
(an error, a cancel, a crash) brings the indexes back with everything else: DDL
is transactional in SQLite, and we hold the write lock, so no other connection
sees the table without them.

Unique indexes (and the primary key's) are never dropped: they enforce a rule.
"""

from __future__ import annotations

import logging
import sqlite3
from types import TracebackType
from typing import Literal

log = logging.getLogger(__name__)

#: suspend only when the insert adds at least this many rows ...
MIN_ROWS = 20_000
#: ... and at least this fraction of the rows the table has already
MIN_SHARE = 0.5


class SuspendedIndexes:
    """``with SuspendedIndexes(conn, table, adding):`` — the bulk insert of ``adding`` rows goes
    into ``table`` without its secondary indexes, which are rebuilt on leaving the block."""

    def __init__(self, conn: sqlite3.Connection, table: str, adding: int):
        self.conn = conn
        self.table = table
        self.adding = adding
        self.dropped: list[tuple[str, str]] = []

    def __enter__(self) -> "SuspendedIndexes":
        if self.adding < MIN_ROWS:
            return self
        present = self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
        if self.adding < MIN_SHARE * present:
            return self
        rows = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (self.table,)).fetchall()
        for name, sql in rows:
            if sql.lstrip().upper().startswith("CREATE UNIQUE"):
                continue
            self.conn.execute(f'DROP INDEX "{name}"')
            self.dropped.append((name, sql))
        log.debug("bulk insert of %d rows into %s (%d rows): %d indexes rebuilt afterwards",
                  self.adding, self.table, present, len(self.dropped))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if exc_type is not None and self.dropped:
            # a rollback restores them, but a caller may catch the error and go on in the same
            # transaction: it must find the indexes there
            try:
                self._restore()
            except Exception:  # e.g. the connection is gone: the rollback that follows restores them
                log.debug("recreating indexes of %s after an error failed", self.table, exc_info=True)
            return False
        self._restore()
        return False

    def _restore(self) -> None:
        dropped, self.dropped = self.dropped, []
        for _name, sql in dropped:
            self.conn.execute(sql)
