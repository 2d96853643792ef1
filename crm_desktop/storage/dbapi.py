"""The sqlite3 connection under a SQLAlchemy connection.

Bulk writers (import, the demo data, the audit writer, sync's outbox) use the driver's
``executemany`` and PRAGMAs directly inside the open transaction; this hands them the
connection with its real type instead of SQLAlchemy's ``Any``.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import Connection


def sqlite_connection(connection: Connection) -> sqlite3.Connection:
    """The sqlite3 connection ``connection`` runs on (every database here is SQLite)."""
    conn = connection.connection.driver_connection
    if not isinstance(conn, sqlite3.Connection):
        raise TypeError(f"expected a sqlite3 connection under {connection!r}, got {type(conn).__name__}")
    return conn
