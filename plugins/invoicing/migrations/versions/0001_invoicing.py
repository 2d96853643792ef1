"""invoicing: products, documents (quotes and invoices) and lines, all synced

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _sync_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("owner_id", sa.String(36), nullable=True),
        sa.Column("team_id", sa.String(36), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "invoicing_products", *_sync_columns(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit_price", sa.String(24), nullable=False),
        sa.Column("tax_rate", sa.String(24), nullable=False),
        sa.Column("unit", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_products")),
    )
    op.create_table(
        "invoicing_documents", *_sync_columns(),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("title", sa.String(300), nullable=True),
        sa.Column("company_id", sa.String(36), nullable=True),
        sa.Column("contact_id", sa.String(36), nullable=True),
        sa.Column("deal_id", sa.String(36), nullable=True),
        sa.Column("source_id", sa.String(36), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("paid_date", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("issued", sa.Boolean(), nullable=False),
        sa.Column("series", sa.String(40), nullable=True),
        sa.Column("number_format", sa.String(60), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("net_total", sa.String(24), nullable=False),
        sa.Column("tax_total", sa.String(24), nullable=False),
        sa.Column("gross_total", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_documents")),
    )
    op.create_index("ix_invoicing_documents_kind_status", "invoicing_documents", ["kind", "status"])
    op.create_table(
        "invoicing_lines", *_sync_columns(),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("product_id", sa.String(36), nullable=True),
        sa.Column("quantity", sa.String(24), nullable=False),
        sa.Column("unit_price", sa.String(24), nullable=False),
        sa.Column("discount_pct", sa.String(24), nullable=False),
        sa.Column("tax_rate", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_lines")),
    )
    op.create_index("ix_invoicing_lines_document_id", "invoicing_lines", ["document_id"])


def downgrade() -> None:
    op.drop_index("ix_invoicing_lines_document_id", "invoicing_lines")
    op.drop_table("invoicing_lines")
    op.drop_index("ix_invoicing_documents_kind_status", "invoicing_documents")
    op.drop_table("invoicing_documents")
    op.drop_table("invoicing_products")
