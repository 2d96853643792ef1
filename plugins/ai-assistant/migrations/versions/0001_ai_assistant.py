"""Create the assistant's exchanges, proposals and stage moves.

Revision ID: ai_assistant_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "ai_assistant_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ai_assistant_exchanges",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("reply", sa.Text, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("transcript", sa.Text, nullable=False),
    )
    op.create_table(
        "ai_assistant_proposals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("exchange_id", sa.String(32), sa.ForeignKey("ai_assistant_exchanges.id"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("tool", sa.String(40), nullable=False),
        sa.Column("entity", sa.String(20), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=True),
        sa.Column("title", sa.String(400), nullable=False),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("on_behalf_of", sa.String(200), nullable=True),
        sa.Column("result_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_ai_assistant_proposals_exchange_id", "ai_assistant_proposals", ["exchange_id"])
    op.create_table(
        "ai_assistant_stage_moves",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deal_id", sa.String(36), nullable=False),
        sa.Column("from_stage_id", sa.String(36), nullable=True),
        sa.Column("to_stage_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_ai_assistant_stage_moves_deal_id", "ai_assistant_stage_moves", ["deal_id"])


def downgrade() -> None:
    op.drop_table("ai_assistant_stage_moves")
    op.drop_index("ix_ai_assistant_proposals_exchange_id", "ai_assistant_proposals")
    op.drop_table("ai_assistant_proposals")
    op.drop_table("ai_assistant_exchanges")
