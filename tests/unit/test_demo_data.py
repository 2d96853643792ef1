"""``crm-desktop demo-data``: realistic, deterministic, one audit entry per run."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from crm_desktop.cli import main
from crm_desktop.core import Core
from crm_desktop.errors import ValidationError
from crm_desktop.paths import Home
from crm_desktop.services.demo_data import generate
from crm_desktop.services.paging import ListQuery


def dump(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return {t: conn.execute(f"SELECT id, {cols} FROM {t} ORDER BY id").fetchall() for t, cols in (
            ("companies", "name, email"), ("contacts", "first_name, last_name, email, company_id"),
            ("deals", "title, (SELECT name FROM stages s WHERE s.id = deals.stage_id), amount_cents"), ("activities", "kind, subject, contact_id"),
            ("leads", "title, status"))}
    finally:
        conn.close()


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    homes = [Home(tmp_path / name) for name in ("a", "b", "c")]
    for home, seed in zip(homes, (5, 5, 6)):
        with Core.open(home) as core:
            generate(core.services, contacts=300, seed=seed)
    a, b, c = (dump(h.db_path) for h in homes)
    assert a == b  # stage ids come from each database's own default pipeline, so compare stage names
    assert a["contacts"] != c["contacts"]


def test_demo_data_is_realistic_and_complete(services):
    result = generate(services, contacts=400, seed=2)
    assert (result.contacts, result.companies, result.deals, result.leads, result.activities) == (400, 20, 40, 20, 100)
    assert services.contacts.count() == 400 and services.companies.count() == 20
    contact = services.contacts.list().items[0]
    assert contact.first_name and contact.last_name and "@" in contact.email
    pipeline = services.pipelines.default()
    totals = services.deals.stage_totals(pipeline.id)
    assert len(totals) >= 4 and sum(n for n, _ in totals.values()) == 40
    now = datetime.now(timezone.utc)
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    open_ = ListQuery(open_only=True)
    overdue = services.activities.count(ListQuery(open_only=True, due_before=start_of_day))
    today = services.activities.count(ListQuery(open_only=True, due_after=start_of_day,
                                                due_before=start_of_day + timedelta(days=1)))
    upcoming = services.activities.count(ListQuery(open_only=True, due_after=start_of_day + timedelta(days=1)))
    done = result.activities - services.activities.count(open_)
    assert overdue > 0 and today > 0 and upcoming > 0 and done > 0
    # the search index is filled (set-based) and the triggers are back for later edits
    name = contact.last_name
    assert any(c.id == contact.id for c in services.contacts.search(name, limit=400))
    services.contacts.update(contact.id, last_name="Zyxwvut")
    assert [c.id for c in services.contacts.search("zyxwvut")] == [contact.id]
    [entry] = services.audit.recent(action="demo-data")
    assert entry.changes["seed"] == 2 and entry.changes["contacts"] == 400
    assert services.audit.recent(action="create", limit=1000) and \
        all(e.entity in ("pipeline", "stage") for e in services.audit.recent(action="create", limit=1000))


def test_the_same_seed_twice_is_refused_and_changes_nothing(services, home):
    generate(services, contacts=50, seed=9)
    with pytest.raises(ValidationError, match="demo data of this seed is in the database already"):
        generate(services, contacts=50, seed=9)
    assert services.contacts.count() == 50
    generate(services, contacts=50, seed=10)
    assert services.contacts.count() == 100


def test_cli_demo_data_and_bad_count(home, capsys):
    assert main(["--home", str(home.root), "demo-data", "--contacts", "120", "--seed", "3"]) == 0
    assert "120 contacts" in capsys.readouterr().out
    assert main(["--home", str(home.root), "db", "check"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home.root), "demo-data", "--contacts", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--contacts" in err[0] and "1 or more" in err[0]


def test_demo_data_passes_the_validation_of_the_services(services, tmp_path):
    """Every record of a large seed is one the app itself would accept, with the same keys."""
    from types import SimpleNamespace

    from crm_desktop.domain.validation import normalize_email, normalize_phone

    generate(services, contacts=5000, seed=4)
    conn = sqlite3.connect(services.db.path)
    region = services.phone_region
    for entity, service, columns in (
            ("contacts", services.contacts, ("first_name", "last_name", "email", "phone", "mobile", "job_title",
                                              "street", "city", "postal_code", "country", "notes")),
            ("companies", services.companies, ("name", "website", "industry", "email", "phone", "street", "city",
                                                "postal_code", "country", "notes")),
            ("leads", services.leads, ("title", "first_name", "last_name", "company_name", "email", "phone",
                                        "status", "source", "notes"))):
        keys = ", email_key, phone_key, mobile_key" if entity == "contacts" else ""
        rows = conn.execute(f"SELECT {', '.join(columns)}{keys} FROM {entity}").fetchall()
        assert len(rows) >= 250
        for row in rows:
            fields = dict(zip(columns, row))
            cleaned = service.clean(None, dict(fields), None)  # raises on anything the app would refuse
            for name in ("email", "phone", "mobile"):
                assert cleaned.get(name, fields.get(name)) == fields.get(name), (entity, name, fields)
            if entity == "contacts":
                email_key, phone_key, mobile_key = row[len(columns):]
                assert email_key == normalize_email(fields["email"])
                assert (phone_key, mobile_key) == (normalize_phone(fields["phone"], region),
                                                   normalize_phone(fields["mobile"], region))
    conn.close()


def test_an_export_of_demo_data_imports_into_a_fresh_database(services, tmp_path):
    from crm_desktop.services.exporter import export_file
    from crm_desktop.services.importer import import_file

    generate(services, contacts=1500, seed=6)
    export_file(services, "contact", tmp_path / "all.csv", fmt="csv")
    with Core.open(Home(tmp_path / "fresh")) as fresh:
        summary = import_file(fresh.services, "contacts", tmp_path / "all.csv")
        assert summary.created == 1500 and fresh.services.contacts.count() == 1500
        assert fresh.services.contacts.search("łukasz") or fresh.services.contacts.search("anderson")
