"""Alembic environment for the core schema.

The migration runner (:mod:`crm_desktop.storage.migrate`) passes an open
connection in ``config.attributes["connection"]``; the ``alembic`` command
line (for writing new revisions) uses ``sqlalchemy.url`` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from crm_desktop.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to):
    # FTS5 tables and their shadow tables are managed in SQL, not by autogenerate.
    if type_ == "table" and name and "_fts" in name:
        return False
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        url = config.get_main_option("sqlalchemy.url")
        with create_engine(url).connect() as conn:
            _run(conn)
            conn.commit()
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying tables
        include_object=_include_object,
        version_table=config.attributes.get("version_table", "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline (SQL script) mode is not supported")
run_migrations_online()
