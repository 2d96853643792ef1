"""Create sample_plugin_notes.

Revision ID: sample_plugin_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "sample_plugin_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sample_plugin_notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sample_plugin_notes")
