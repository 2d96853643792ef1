"""contacts: drop ix_contacts_company_id, a prefix of ix_contacts_company_name

``ix_contacts_company_name`` (company_id, name_key) serves every lookup by
company_id that ``ix_contacts_company_id`` served (a company's contacts, the
foreign-key check when a company is deleted, the import's name-in-company
duplicate join), so the single-column index only cost space and a write per
contact (and its rebuild after a large import). EXPLAIN QUERY PLAN of those
queries is checked in tests/unit/test_migrations.py.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_contacts_company_id", table_name="contacts")


def downgrade() -> None:
    op.create_index("ix_contacts_company_id", "contacts", ["company_id"])
