"""leads: status 'converted' for every lead that was converted

Converting a lead used to leave its status at 'qualified' (the UI alone read
"Converted" from ``converted_at``). ``LeadStatus`` now has ``converted`` and
conversion sets it; this brings the leads converted before to the same status.
The column is a plain String(20) without a CHECK constraint, so no schema change
is needed. Each lead changed here gets an outbox mutation (``status: [old,
'converted']`` against its server version), as any local edit does, so the server
and the other devices learn it on the next sync.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _now() -> str:
    # the text SQLAlchemy's DateTime stores on SQLite (naive UTC), as crm_desktop.storage.changes.db_time
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def upgrade() -> None:
    conn = op.get_bind()
    leads = conn.exec_driver_sql(
        "SELECT id, status, version FROM leads WHERE converted_at IS NOT NULL AND status <> 'converted'").fetchall()
    if not leads:
        return
    now = _now()
    for lead_id, old, version in leads:
        conn.exec_driver_sql("UPDATE leads SET status = 'converted', updated_at = ? WHERE id = ?", (now, lead_id))
        conn.exec_driver_sql(
            "INSERT INTO sync_outbox (entity, record_id, op, fields, base_version, created_at, status) "
            "VALUES ('lead', ?, 'update', ?, ?, ?, 'pending')",
            (lead_id, json.dumps({"status": [old, "converted"]}), version or 0, now))


def downgrade() -> None:
    # the code before this revision does not know 'converted'; its UI read converted_at instead
    op.get_bind().exec_driver_sql("UPDATE leads SET status = 'qualified' WHERE status = 'converted'")
