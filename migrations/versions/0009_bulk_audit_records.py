"""audit: audit_entry_records, the records a bulk audit entry covers

A bulk insert (an import) is now audited as one ``audit_entries`` row for the
batch plus one ``audit_entry_records`` row per created record, instead of an
entry with every field as JSON per record; and its sync outbox rows are compact
creates (``fields`` the JSON ``null``: read from the record when the mutation is
read; the column stays NOT NULL, so the AUTOINCREMENT table that numbers the
mutations is not rebuilt). See docs/architecture.md, "The bulk path".

Downgrade writes what the older code reads: one audit entry per covered record
(the batch's details as its ``changes``) and each compact create filled in with
its record's values.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entry_records",
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["audit_entries.id"],
                                name=op.f("fk_audit_entry_records_entry_id_audit_entries"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("record_id", "entry_id", name=op.f("pk_audit_entry_records")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    from crm_desktop.sync import outbox

    bind = op.get_bind()
    conn = bind.connection.driver_connection
    bind.exec_driver_sql(
        "INSERT INTO audit_entries (at, actor_kind, actor_name, action, entity, record_id, changes) "
        "SELECT e.at, e.actor_kind, e.actor_name, e.action, e.entity, r.record_id, e.changes "
        "FROM audit_entry_records r JOIN audit_entries e ON e.id = r.entry_id ORDER BY e.id, r.record_id")
    bind.exec_driver_sql("DELETE FROM audit_entries WHERE record_id IS NULL AND id IN "
                         "(SELECT entry_id FROM audit_entry_records)")
    op.drop_table("audit_entry_records")
    rows = conn.execute("SELECT id, entity, record_id FROM sync_outbox WHERE fields = 'null'").fetchall()
    by_entity: dict[str, list[tuple[int, str]]] = {}
    for mutation_id, entity, record_id in rows:
        by_entity.setdefault(entity, []).append((mutation_id, record_id))
    for entity, items in by_entity.items():
        found = outbox.compact_fields(conn, entity, [rid for _, rid in items])
        conn.executemany("UPDATE sync_outbox SET fields = ? WHERE id = ?",
                         [(found.get(rid, "{}"), mid) for mid, rid in items])
