from alembic import context

from crm_desktop.plugin_api.migrations import run_migrations

run_migrations(context)
