"""The body of a plugin's alembic ``env.py``.

A plugin's ``migrations/env.py`` is two lines::

    from alembic import context
    from crm_desktop.plugin_api.migrations import run_migrations
    run_migrations(context)

The host passes the connection and the plugin's own version table
(``alembic_version_<plugin>``); tables of other plugins and of the core are
left out of autogenerate.
"""

from __future__ import annotations

from typing import Any


def run_migrations(context: Any, target_metadata: Any = None) -> None:
    """Run the pending revisions of this script directory on the host's connection.

    ``context`` is ``alembic.context``; ``target_metadata`` (optional) your
    base's ``metadata``, for ``alembic revision --autogenerate``.
    """
    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version_plugin")
    prefix = version_table.removeprefix("alembic_version_") + "_"

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # Only this plugin's tables: never propose dropping the core's or another plugin's.
        return type_ != "table" or bool(name and name.startswith(prefix))

    def run(connection: Any) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          version_table=version_table, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
            run(conn)
            conn.commit()
    else:
        run(connection)
