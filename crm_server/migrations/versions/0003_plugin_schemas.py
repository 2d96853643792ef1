"""plugin data sync: the JSON schema of each synced plugin table

Records of synced plugin tables (entity ``<plugin>.<table>``) are stored in ``records``
and logged in ``changes`` like core records; ``plugin_schemas`` keeps the schema that
validates them, published by the clients that run the plugin; ``plugin_sequences`` the
counters of server-assigned numbers (invoice numbers).

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'plugin_schemas',
        sa.Column('entity', sa.String(length=40), nullable=False),
        sa.Column('plugin', sa.String(length=100), nullable=False),
        sa.Column('plugin_version', sa.String(length=50), nullable=False),
        sa.Column('schema', sa.JSON(), nullable=False),
        sa.Column('published_by', sa.String(length=36), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('entity', name=op.f('pk_plugin_schemas')),
    )
    op.create_table(
        'plugin_sequences',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('value', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_plugin_sequences')),
    )


def downgrade() -> None:
    op.drop_table('plugin_sequences')
    op.drop_table('plugin_schemas')
