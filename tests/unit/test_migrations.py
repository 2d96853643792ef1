"""Migrations: a failing one leaves the database as it was; a newer database is refused."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from crm_desktop.core import Core
from crm_desktop.errors import DatabaseError
from crm_desktop.storage import migrate

FAILING_REVISION = '''"""adds a table, fills a column, then fails half-way"""
import sqlalchemy as sa
from alembic import op

revision = "0099_fails"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("UPDATE contacts SET notes = 'changed by a broken migration'")
    raise RuntimeError("disk full (simulated) in the middle of the migration")


def downgrade() -> None:
    pass
'''


def _state(db_path):
    conn = sqlite3.connect(db_path)
    try:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
        contacts = conn.execute("SELECT id, first_name, notes FROM contacts ORDER BY id").fetchall()
        return tables, contacts
    finally:
        conn.close()


def test_a_failing_migration_leaves_data_and_revision_unchanged(home, tmp_path):
    with Core.open(home) as core:
        core.services.contacts.create(first_name="Ann", last_name="Lee", notes="keep me")
    head = migrate.current_revision(home.db_path)
    before = _state(home.db_path)
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.core_script_location(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0099_fails.py").write_text(FAILING_REVISION.format(head=head))

    with pytest.raises(DatabaseError) as info:
        migrate.upgrade(home.db_path, home.backups_dir, script_location=scripts)
    message = str(info.value)
    assert "failed and was undone" in message and "disk full (simulated)" in message and "0099_fails" in message
    assert migrate.current_revision(home.db_path) == head
    assert _state(home.db_path) == before
    assert "half_done" not in before[0]
    assert migrate.integrity_problems(home.db_path) == []
    with Core.open(home) as core:  # and the app opens it as before
        assert core.services.contacts.search("ann")[0].notes == "keep me"


def test_a_database_newer_than_the_code_is_refused_and_left_alone(home):
    Core.open(home).close()
    conn = sqlite3.connect(home.db_path)
    conn.execute("UPDATE alembic_version SET version_num = '0500_future'")
    conn.commit()
    conn.close()
    before = home.db_path.read_bytes()
    with pytest.raises(DatabaseError) as info:
        Core.open(home)
    assert "newer than this app knows" in str(info.value) and "0500_future" in str(info.value)
    assert home.db_path.read_bytes() == before
    assert not list(home.backups_dir.iterdir())  # refused before any backup or migration


def test_contacts_by_company_use_the_company_name_index_once_its_prefix_index_is_gone(home):
    """0005 drops ix_contacts_company_id (a prefix of ix_contacts_company_name): the lookups it
    served (a company's contacts, the search trigger of a renamed company, the foreign-key check
    of a deleted company) use ix_contacts_company_name instead, and the migration goes back down."""
    Core.open(home).close()
    conn = sqlite3.connect(home.db_path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'contacts' "
                                            "AND type = 'index'")}
        assert "ix_contacts_company_id" not in names and "ix_contacts_company_name" in names
        for sql in ("SELECT id FROM contacts WHERE company_id = ? AND deleted_at IS NULL ORDER BY name_key",
                    "SELECT rowid FROM contacts WHERE company_id = ? AND deleted_at IS NULL",
                    "SELECT 1 FROM contacts WHERE company_id = ?",  # the foreign-key check's lookup
                    "SELECT id FROM contacts WHERE company_id = ? AND name_key = ? AND deleted_at IS NULL"):
            plan = " ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, ("x",) * sql.count("?")))
            assert "INDEX ix_contacts_company_name (company_id=?" in plan, (sql, plan)
        # a company with contacts still cannot be deleted underneath them
        conn.execute("PRAGMA foreign_keys=ON")
        now = "2026-01-01 00:00:00.000000"
        conn.execute("INSERT INTO companies (id, name, name_key, created_at, updated_at, version) "
                     "VALUES ('c1', 'Acme', 'acme', ?, ?, 0)", (now, now))
        conn.execute("INSERT INTO contacts (id, last_name, company_id, created_at, updated_at, version) "
                     "VALUES ('p1', 'Lee', 'c1', ?, ?, 0)", (now, now))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("DELETE FROM companies WHERE id = 'c1'")
        conn.rollback()
    finally:
        conn.close()
    from alembic import command

    config = migrate.alembic_config(migrate.core_script_location())
    config.set_main_option("sqlalchemy.url", f"sqlite:///{home.db_path}")
    command.downgrade(config, "0004")
    conn = sqlite3.connect(home.db_path)
    try:
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_contacts_company_id'").fetchone() == (
            "CREATE INDEX ix_contacts_company_id ON contacts (company_id)",)
    finally:
        conn.close()


def test_0006_marks_leads_converted_before_it_converted_and_queues_the_change_for_sync(home):
    """A lead converted by the old code kept status 'qualified'; the upgrade makes it 'converted' and
    writes its outbox mutation, like any local edit. Downgrading puts 'qualified' back."""
    import json

    from alembic import command

    Core.open(home).close()
    config = migrate.alembic_config(migrate.core_script_location())
    config.set_main_option("sqlalchemy.url", f"sqlite:///{home.db_path}")
    command.downgrade(config, "0005")
    now = "2024-05-01 10:00:00.000000"
    conn = sqlite3.connect(home.db_path)
    try:
        with conn:
            conn.execute("DELETE FROM sync_outbox")
            for lead_id, status, converted_at, version in (("l1", "qualified", now, 4), ("l2", "qualified", None, 0),
                                                            ("l3", "new", None, 0)):
                conn.execute("INSERT INTO leads (id, title, status, converted_at, created_at, updated_at, version) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (lead_id, f"Lead {lead_id}", status, converted_at,
                                                               now, now, version))
    finally:
        conn.close()
    command.upgrade(config, "head")
    conn = sqlite3.connect(home.db_path)
    try:
        assert dict(conn.execute("SELECT id, status FROM leads ORDER BY id")) == {
            "l1": "converted", "l2": "qualified", "l3": "new"}
        outbox = conn.execute("SELECT entity, record_id, op, fields, base_version, status FROM sync_outbox").fetchall()
        assert [(e, r, o, json.loads(f), v, st) for e, r, o, f, v, st in outbox] == [
            ("lead", "l1", "update", {"status": ["qualified", "converted"]}, 4, "pending")]
        assert conn.execute("SELECT updated_at > ? FROM leads WHERE id = 'l1'", (now,)).fetchone() == (1,)
    finally:
        conn.close()
    command.downgrade(config, "0005")
    conn = sqlite3.connect(home.db_path)
    try:
        assert conn.execute("SELECT status FROM leads WHERE id = 'l1'").fetchone() == ("qualified",)
    finally:
        conn.close()
    command.upgrade(config, "head")
    with Core.open(home) as core:
        assert core.services.leads.get("l1").status == "converted"


def test_0009_keeps_who_created_each_imported_record_and_every_pending_create_down_and_up(home, tmp_path):
    """0009 adds audit_entry_records (a bulk entry's records) and lets a bulk insert's outbox rows be
    compact creates. Going down writes what the older code reads (one entry per record, each
    create's fields filled in from its record); going up again keeps those and works as before."""
    import json

    from alembic import command

    from crm_desktop.services.importer import import_file

    path = tmp_path / "people.csv"
    path.write_text("First Name;Last Name;E-mail;City\nAnn;Lee;ann@example.com;Berlin\nBo;Li;bo@example.com;\n",
                    encoding="utf-8", newline="")
    with Core.open(home) as core:
        import_file(core.services, "contacts", path)
        ids = sorted(c.id for c in core.services.contacts.list().items)
        bulk = core.services.audit.created("contact", ids[0])
    assert bulk is not None and bulk.action == "import" and bulk.changes["records"] == 2
    config = migrate.alembic_config(migrate.core_script_location())
    config.set_main_option("sqlalchemy.url", f"sqlite:///{home.db_path}")
    command.downgrade(config, "0008")
    conn = sqlite3.connect(home.db_path)
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'audit_entry_records'").fetchone() is None
        entries = conn.execute("SELECT record_id, action, actor_name, at, changes FROM audit_entries "
                               "WHERE entity = 'contact' ORDER BY record_id").fetchall()
        assert [(e[0], e[1], e[2]) for e in entries] == [(i, "import", bulk.actor_name) for i in ids]
        assert json.loads(entries[0][4])["file"] == "people.csv"
        fields = dict(conn.execute("SELECT record_id, fields FROM sync_outbox WHERE entity = 'contact'"))
        ann = next(i for i in ids if '"Ann"' in fields[i])
        assert json.loads(fields[ann]) == {"first_name": [None, "Ann"], "last_name": [None, "Lee"],
                                           "email": [None, "ann@example.com"], "city": [None, "Berlin"]}
        assert "null" not in fields.values()
    finally:
        conn.close()
    command.upgrade(config, "head")
    with Core.open(home) as core:
        assert core.services.audit.created("contact", ids[1]).action == "import"
        core.services.contacts.update(ids[1], city="Wien")
        assert [e.action for e in core.services.audit.for_record("contact", ids[1])] == ["update", "import"]


_CHARTS = {
    "pipeline": ("deal", ["pipeline_name", "stage_position", "stage_name", "currency"],
                 {"deals": "count", "value": "sum:amount_cents"}, {"status": "open"}, "ix_deals_live_reporting"),
    "won_lost": ("deal", ["closed_at:month", "status"], {"deals": "count"},
                 {"status": ["won", "lost"], "closed_at__gte": "2025-01-01", "closed_at__lt": "2026-01-01"},
                 "ix_deals_live_reporting"),
    "win_rate": ("deal", ["status"], {"deals": "count", "cycle": "avg:cycle_days"},
                 {"status": ["won", "lost"], "closed_at__gte": "2025-01-01", "closed_at__lt": "2026-01-01"},
                 "ix_deals_live_reporting"),
    "activities": ("activity", ["done_at:week", "owner_id"], {"activities": "count"},
                   {"is_done": True, "done_at__gte": "2025-01-01", "done_at__lt": "2026-01-01"},
                   "ix_activities_live_done_due"),
    "forecast": ("deal", ["expected_close:month", "currency"],
                 {"deals": "count", "weighted": "sum:weighted_amount_cents", "value": "sum:amount_cents"},
                 {"status": "open", "expected_close__lt": "2026-01-01"}, "ix_deals_live_reporting"),
    "leads": ("lead", ["source"], {"leads": "count"}, {"created_at__gte": "2025-01-01", "created_at__lt": "2026-01-01"},
              "ix_leads_live_created"),
}


def _plan(conn, sql: str) -> str:
    return " | ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))


def _index_sql(conn, name: str):
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
    return row[0] if row else None


def test_0010_reporting_aggregates_read_only_their_covering_indexes_and_the_migration_goes_back_down(home):
    """Each chart's aggregate (all owners, one owner, one team) is answered from one covering index,
    without statistics (a user's database is never ANALYZEd); the agenda's open activities by due
    date still use the activities index it replaced; down to 0009 and up again keeps every row."""
    from alembic import command
    from sqlalchemy.dialects import sqlite

    from crm_desktop.services import aggregates

    with Core.open(home) as core:
        services = core.services
        stage = services.pipelines.stages(services.pipelines.default().id)[2]
        deal = services.deals.create(title="Big one", stage_id=stage.id, amount=1200, owner_id="u1", team_id="north")
        activity = services.activities.create(kind="call", subject="Call back", owner_id="u1")
        lead = services.leads.create(title="Website lead", source="Website")
    conn = sqlite3.connect(home.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() == (0,)
        assert _index_sql(conn, "ix_activities_live_due") is None
        for key, (entity, group_by, measures, filters, index) in _CHARTS.items():
            for people in ({}, {"owner_id": "u1"}, {"team_id": "north"}):
                sql = str(aggregates.build(entity, group_by, measures, {**filters, **people}).compile(
                    dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
                plan = _plan(conn, sql)
                assert f"USING COVERING INDEX {index}" in plan, (key, people, plan)
                assert "SCAN deals" not in plan and "SCAN activities" not in plan and "SCAN leads" not in plan
        agenda = ("SELECT id FROM activities WHERE deleted_at IS NULL AND done_at IS NULL AND due_at IS NOT NULL "
                  "AND due_at < '2030-01-01' ORDER BY due_at LIMIT 50")
        assert "INDEX ix_activities_live_done_due (done_at=? AND due_at>? AND due_at<?)" in _plan(conn, agenda)
        assert "TEMP B-TREE" not in _plan(conn, agenda)  # still in due order from the index
    finally:
        conn.close()

    config = migrate.alembic_config(migrate.core_script_location())
    config.set_main_option("sqlalchemy.url", f"sqlite:///{home.db_path}")
    command.downgrade(config, "0009")
    conn = sqlite3.connect(home.db_path)
    try:
        for name in ("ix_deals_live_reporting", "ix_activities_live_done_due", "ix_leads_live_created"):
            assert _index_sql(conn, name) is None
        assert _index_sql(conn, "ix_activities_live_due") == (
            "CREATE INDEX ix_activities_live_due ON activities (done_at, due_at) WHERE deleted_at IS NULL")
        assert conn.execute("SELECT amount_cents FROM deals WHERE id = ?", (deal.id,)).fetchone() == (120000,)
    finally:
        conn.close()
    command.upgrade(config, "head")
    with Core.open(home) as core:
        assert core.services.deals.get(deal.id).amount_cents == 120000
        assert core.services.activities.get(activity.id).subject == "Call back"
        assert core.services.leads.get(lead.id).source == "Website"
        assert core.services.deals.aggregate(group_by=["stage_name"], measures={"n": "count", "v": "sum:amount_cents"},
                                             filters={"status": "open"}) == [
            {"stage_name": stage.name, "n": 1, "v": 120000}]
    conn = sqlite3.connect(home.db_path)
    try:
        assert _index_sql(conn, "ix_deals_live_reporting").startswith("CREATE INDEX ix_deals_live_reporting ON deals")
        assert _index_sql(conn, "ix_activities_live_due") is None
    finally:
        conn.close()
