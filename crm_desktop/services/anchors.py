"""Key anchors: the key of every 1000th row of an ordering, so a view can jump anywhere.

A list view that lets the user drag its scroll bar to row 734,512 of a
million needs the key at that position, then pages by key from there.
``OFFSET 734512`` walks the index row by row (about 0.1 s at a million rows,
on every jump); instead the whole covering index is scanned once and every
:data:`STEP`-th key kept (a thousand keys per million rows). A jump then
seeks to the nearest anchor and steps at most ``STEP - 1`` rows.

Anchors go stale on any commit to the database, by this process or another
(sync, import, a second window): that is noticed with ``PRAGMA data_version``
on a connection of the cache's own, which changes whenever some other
connection commits. Small orderings are rebuilt at once; for large ones the
old anchors keep answering (off by at most the number of rows written since)
while a background thread rebuilds them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

log = logging.getLogger(__name__)

#: one anchor per this many rows
STEP = 1000
#: orderings with fewer anchors than this are rebuilt synchronously when stale
SYNC_REBUILD_ANCHORS = 100
#: how many orderings (entity, sort, filter) are kept
MAX_ORDERINGS = 16

KeyRows = Callable[[], Iterable[tuple[Any, str]]]


@dataclass
class _Anchors:
    keys: list[tuple[Any, str]]
    data_version: int
    rebuilding: bool = False


class KeyAnchorCache:
    """Anchors per ordering, shared by all services on one database file."""

    def __init__(self, db_path: Path):
        self._db_path = Path(db_path)
        self._lock = threading.Lock()
        self._version_conn: sqlite3.Connection | None = None
        self._orderings: OrderedDict[Hashable, _Anchors] = OrderedDict()

    def data_version(self) -> int:
        """A number that changes whenever another connection committed to the database."""
        with self._lock:
            if self._version_conn is None:
                self._version_conn = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True,
                                                     check_same_thread=False)
            return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def anchors(self, ordering: Hashable, key_rows: KeyRows) -> list[tuple[Any, str]]:
        """Every STEP-th key of ``ordering`` (from ``key_rows``, which yields all keys in order).

        Builds them on first use; when stale, rebuilds them now (small) or in the
        background while returning the previous ones (large).
        """
        version = self.data_version()
        with self._lock:
            entry = self._orderings.get(ordering)
            if entry is not None:
                self._orderings.move_to_end(ordering)
                if entry.data_version == version:
                    return entry.keys
                if len(entry.keys) >= SYNC_REBUILD_ANCHORS:
                    if not entry.rebuilding:
                        entry.rebuilding = True
                        threading.Thread(target=self._rebuild, args=(ordering, key_rows),
                                         name="key-anchors", daemon=True).start()
                    return entry.keys
        return self._rebuild(ordering, key_rows)

    def invalidate(self) -> None:
        """Forget every ordering (tests; after a restore)."""
        with self._lock:
            self._orderings.clear()

    def close(self) -> None:
        with self._lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None

    def _rebuild(self, ordering: Hashable, key_rows: KeyRows) -> list[tuple[Any, str]]:
        # The version is read before the scan: a commit during the scan makes the
        # anchors look stale at the next use, which costs a rebuild, never a wrong answer.
        version = self.data_version()
        try:
            keys = [key for n, key in enumerate(key_rows()) if n % STEP == 0]
        except Exception:
            log.exception("building key anchors for %r failed", ordering)
            with self._lock:
                self._orderings.pop(ordering, None)
            raise
        with self._lock:
            self._orderings[ordering] = _Anchors(keys, version)
            self._orderings.move_to_end(ordering)
            while len(self._orderings) > MAX_ORDERINGS:
                self._orderings.popitem(last=False)
        log.debug("key anchors for %r: %d", ordering, len(keys))
        return keys


def cache_for(db: Any) -> KeyAnchorCache:
    """The anchor cache of one open :class:`~crm_desktop.storage.engine.Database`."""
    cache = getattr(db, "_key_anchor_cache", None)
    if cache is None:
        cache = KeyAnchorCache(db.path)
        setattr(db, "_key_anchor_cache", cache)
        # its own connection must not outlive the database object that owns it
        weakref.finalize(db, cache.close)
    return cache
