"""local revision counter on every synced table

``version`` stays the server's version (0 = never synced); ``revision`` counts
local writes (docs/architecture.md, "Sync columns"). Rows written before this
revision count as written once.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SYNCED_TABLES = ("users", "tags", "companies", "contacts", "leads", "pipelines", "stages", "deals", "activities")


def upgrade() -> None:
    for table in SYNCED_TABLES:
        # a plain ADD COLUMN (no table copy): the FTS triggers and rowids stay as they are
        op.add_column(table, sa.Column("revision", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    for table in SYNCED_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("revision")
