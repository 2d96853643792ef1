"""The constraint naming convention shared by the core schema and every plugin's tables.

Plain data in a module of its own, so both :mod:`crm_desktop.storage` and
:mod:`crm_desktop.plugin_api` (which may not import storage) use the one copy,
and alembic names a plugin's constraints like the core's.
"""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
