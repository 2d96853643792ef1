"""admin console: device reports, plugin reports, push audit, console sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('app_version', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('protocol_version', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_cursor', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pending_reported', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('rejected_total', sa.Integer(), nullable=False, server_default='0'))

    op.create_table('device_plugins',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_plugins_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', 'name', name=op.f('pk_device_plugins'))
    )
    op.create_table('push_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('mutation_id', sa.BigInteger(), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('op', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_audit'))
    )
    with op.batch_alter_table('push_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_audit_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_audit_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_push_audit_user_id'), ['user_id'], unique=False)

    op.create_table('console_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flash', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_console_sessions'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('console_sessions')
    op.drop_table('push_audit')
    op.drop_table('device_plugins')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        for name in ('rejected_total', 'pending_reported', 'last_cursor', 'last_sync_at', 'protocol_version',
                     'app_version'):
            batch_op.drop_column(name)
