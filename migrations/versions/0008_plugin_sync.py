"""sync: synced plugin tables and parked plugin changes

``sync_plugin_tables`` keeps, per synced plugin entity (``invoicing.invoices``), its table
and the JSON schema of its fields, published by the plugin host when the plugin's tables
are migrated, so sync converts and applies plugin records without the plugin's code.
``sync_parked_changes`` holds pulled changes of plugin entities this database does not know
yet (the plugin is not installed here); they are applied when the plugin publishes its table.
Both are local only, never synced (crm_desktop/storage/plugin_sync.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_plugin_tables",
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("plugin", sa.String(length=100), nullable=False),
        sa.Column("table_name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("entity", name=op.f("pk_sync_plugin_tables")),
    )
    op.create_table(
        "sync_parked_changes",
        sa.Column("entity", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "record_id", name=op.f("pk_sync_parked_changes")),
    )


def downgrade() -> None:
    op.drop_table("sync_parked_changes")
    op.drop_table("sync_plugin_tables")
