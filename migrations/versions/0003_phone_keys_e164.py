"""phone keys in E.164 (phonenumbers) instead of the last nine digits

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:00:00

Duplicate detection compares ``contacts.phone_key`` / ``mobile_key``; their form
changed from "last nine digits" to E.164 (:mod:`crm_desktop.domain.phones`), so
keys written before are recomputed here, numbers without a country in the region
of ``<home>/settings.json`` or the locale (as the app does).
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from crm_desktop import user_settings
from crm_desktop.domain.phones import phone_key

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    database = conn.engine.url.database
    region = user_settings.phone_region(Path(database).parent / "settings.json") if database else None
    rows = conn.exec_driver_sql("SELECT id, phone, mobile FROM contacts "
                                "WHERE phone IS NOT NULL OR mobile IS NOT NULL").fetchall()
    updates = [(phone_key(phone, region), phone_key(mobile, region), ident) for ident, phone, mobile in rows]
    if updates:
        conn.connection.driver_connection.executemany(
            "UPDATE contacts SET phone_key = ?, mobile_key = ? WHERE id = ?", updates)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.exec_driver_sql("SELECT id, phone, mobile FROM contacts").fetchall()

    def nine(text):
        digits = "".join(c for c in text or "" if c.isdigit())
        return digits[-9:] if len(digits) >= 5 else None

    conn.connection.driver_connection.executemany(
        "UPDATE contacts SET phone_key = ?, mobile_key = ? WHERE id = ?",
        [(nine(p), nine(m), i) for i, p, m in rows])
