"""audit_entries: on_behalf_of, the user an agent acted for

A plugin's AI assistant writes with actor ``agent:<model>`` (``ctx.acting_as_agent``);
``on_behalf_of`` names the signed-in user it acted for, so the audit log answers both
"which model did this" and "for whom". NULL for every other actor.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_entries", sa.Column("on_behalf_of", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("on_behalf_of")
