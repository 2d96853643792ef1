"""reporting: covering indexes for the dashboard's aggregates (deals, done activities, leads)

The reporting dashboard (plugins/reporting) groups live deals by status, stage, currency,
month of expected close or of closing, and done activities by week and owner, filtered by
owner and team (``ctx.<records>.aggregate``, crm_desktop/services/aggregates.py). Without
these indexes each chart read every deal or activity of a status or date range from the
table, one row lookup per index entry: 0.5-0.9 s per chart at 200k deals / 250k activities.

* ``ix_deals_live_reporting`` holds every column those deal aggregates read, so SQLite
  answers them from the index alone ("USING COVERING INDEX"). ``status, stage_id,
  pipeline_id, currency`` lead, in that order, so the per-stage pre-aggregation of
  ``services/aggregates.py`` groups in index order (no sort). ``deleted_at`` is in the
  columns, although the index holds live rows only, because SQLite counts an index as
  covering only when every column the query names is in it.
* ``ix_activities_live_done_due`` replaces ``ix_activities_live_due`` (done_at, due_at):
  the same leading columns, so the agenda's open-activities-by-due queries use it as
  before, plus ``owner_id, team_id, deleted_at`` for the activities-per-rep chart. One index
  replaced, not one added: an activity write updates as many indexes as before.
* ``ix_leads_live_created`` (created_at, source, owner_id, team_id): leads by source created in
  a date range. Without statistics (``ANALYZE`` never runs on a user's database) SQLite
  otherwise walked ``ix_leads_live_title`` with a row lookup per lead, 4-5x a plain scan.

None of these tables is bulk-imported (the importer takes contacts and companies, whose
indexes :class:`crm_desktop.storage.bulk_indexes.SuspendedIndexes` drops and rebuilds);
the indexes cost demo data and first syncs one more index write per deal.
EXPLAIN QUERY PLAN of each chart's aggregate is checked in tests/unit/test_migrations.py.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
ACTIVITIES_COLUMNS = ["done_at", "due_at", "owner_id", "team_id", "deleted_at"]
LEADS_COLUMNS = ["created_at", "source", "owner_id", "team_id", "deleted_at"]
DEALS_COLUMNS = ["status", "stage_id", "pipeline_id", "currency", "expected_close", "amount_cents", "owner_id",
                 "team_id", "stage_changed_at", "created_at", "deleted_at"]


def upgrade() -> None:
    op.create_index("ix_deals_live_reporting", "deals", DEALS_COLUMNS, sqlite_where=LIVE)
    op.execute("DROP INDEX IF EXISTS ix_activities_live_due")  # made by 0001; a missing one is no reason to fail
    op.create_index("ix_activities_live_done_due", "activities", ACTIVITIES_COLUMNS, sqlite_where=LIVE)
    op.create_index("ix_leads_live_created", "leads", LEADS_COLUMNS, sqlite_where=LIVE)


def downgrade() -> None:
    op.drop_index("ix_leads_live_created", table_name="leads")
    op.drop_index("ix_activities_live_done_due", table_name="activities")
    op.create_index("ix_activities_live_due", "activities", ["done_at", "due_at"], sqlite_where=LIVE)
    op.drop_index("ix_deals_live_reporting", table_name="deals")
