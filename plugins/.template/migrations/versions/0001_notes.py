"""Create __PLUGIN_IDENT___notes.

Revision ID: __PLUGIN_IDENT___0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "__PLUGIN_IDENT___0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "__PLUGIN_IDENT___notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text", sa.String(500), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("__PLUGIN_IDENT___notes")
