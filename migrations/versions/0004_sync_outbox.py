"""sync: outbox, conflicts and state

Local-only tables of the sync client (crm_desktop/sync): the outbox of
mutations (its AUTOINCREMENT id is the protocol's per-device mutation id),
conflicts waiting for the rep, and key/value state (account, device, cursor).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_desktop.storage.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_desktop.storage.base.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_outbox")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sync_outbox_status", "sync_outbox", ["status", "id"])
    op.create_index("ix_sync_outbox_record", "sync_outbox", ["record_id"])
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entity", sa.String(length=30), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("theirs", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("mutation_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_desktop.storage.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    op.create_index("ix_sync_conflicts_record_id", "sync_conflicts", ["record_id"])
    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    op.drop_index("ix_sync_conflicts_record_id", "sync_conflicts")
    op.drop_table("sync_conflicts")
    op.drop_index("ix_sync_outbox_record", "sync_outbox")
    op.drop_index("ix_sync_outbox_status", "sync_outbox")
    op.drop_table("sync_outbox")
