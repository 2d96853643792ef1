"""Keyset paging: query plans that walk an index, and key_at at any depth."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import event

from crm_desktop.services import ListQuery, Sort
from crm_desktop.services import anchors as anchors_module


def insert_contacts(core, n, *, start=0):
    """``n`` contacts written straight with SQL (as a bulk import would), names in a known order."""
    conn = sqlite3.connect(core.home.db_path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (id, first_name, last_name, name_key, updated_at, created_at, version) "
            "VALUES (?, 'P', ?, ?, ?, ?, 0)",
            [(f"00000000-0000-7000-8000-{i:012d}", f"N{i:06d}", f"n{i:06d} p",
              f"2026-01-01 00:{(i // 60) % 60:02d}:{i % 60:02d}.{i:06d}",
              "2026-01-01 00:00:00") for i in range(start, start + n)])
    conn.close()


def plan_of(core, run):
    """The EXPLAIN QUERY PLAN lines of the first SELECT that ``run`` sends to the read engine."""
    seen = []

    def capture(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(core.db.read_engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(core.db.read_engine, "before_cursor_execute", capture)
    statement, params = seen[0]
    conn = sqlite3.connect(core.home.db_path)
    try:
        return [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params)]
    finally:
        conn.close()


@pytest.mark.parametrize("entity, sort, index", [
    ("contact", Sort("name"), "ix_contacts_live_name"),
    ("contact", Sort("name", descending=True), "ix_contacts_live_name"),
    ("contact", Sort("updated"), "ix_contacts_updated"),
    ("company", Sort("name"), "ix_companies_live_name"),
    ("lead", Sort("title"), "ix_leads_live_title"),
    ("deal", Sort("title"), "ix_deals_live_title"),
    ("activity", Sort("due"), "ix_activities_due"),
])
def test_default_list_pages_walk_an_index_without_sorting(core, services, entity, sort, index):
    svc = services.entity_service(entity)
    key = ("m", "00000000-0000-7000-8000-000000000000")
    for kwargs in ({}, {"after": key}, {"before": key}):
        plan = plan_of(core, lambda: svc.list(sort=sort, limit=200, **kwargs))
        assert any(index in line for line in plan), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan


def test_paging_forwards_and_backwards_visits_every_row_once(core, services):
    insert_contacts(core, 450)
    seen, page = [], services.contacts.list(limit=200)
    while True:
        seen.extend(c.last_name for c in page.items)
        if not page.has_more:
            break
        page = services.contacts.list(after=page.last_key, limit=200)
    assert seen == [f"N{i:06d}" for i in range(450)]
    back = services.contacts.list(before=page.first_key, limit=200)
    assert [c.last_name for c in back.items] == [f"N{i:06d}" for i in range(200, 400)]


def test_key_at_matches_the_row_at_that_position_at_any_depth(core, services):
    insert_contacts(core, 3500)
    for position in (0, 999, 1000, 1001, 2345, 3000, 3499):
        assert services.contacts.key_at(position)[0] == f"n{position:06d} p"
        page = services.contacts.list(after=services.contacts.key_at(position), limit=3)
        assert [c.last_name for c in page.items] == [f"N{i:06d}" for i in range(position + 1, min(position + 4, 3500))]
    assert services.contacts.key_at(3500) is None and services.contacts.key_at(10**7) is None
    assert services.contacts.key_at(3499, sort=Sort("name", descending=True))[0] == "n000000 p"
    assert services.contacts.key_at(1234, sort=Sort("name", descending=True))[0] == f"n{3499 - 1234:06d} p"
    updated = services.contacts.key_at(2222, sort=Sort("updated"))
    assert updated[1] == f"00000000-0000-7000-8000-{2222:012d}"


def test_key_at_follows_writes_from_any_connection(core, services):
    insert_contacts(core, 2500)
    assert services.contacts.key_at(2000)[0] == "n002000 p"
    services.contacts.create(first_name="A", last_name="Aaa")  # sorts first: everything shifts by one
    assert services.contacts.key_at(2000)[0] == "n001999 p"
    services.contacts.delete(services.contacts.list(limit=1).items[0].id)
    insert_contacts(core, 10, start=5000)  # another connection, behind the services' back
    assert services.contacts.key_at(2509)[0] == "n005009 p"


def test_key_at_with_a_filter_counts_only_matching_rows(core, services):
    insert_contacts(core, 2100)
    acme = services.companies.create(name="Acme")
    conn = sqlite3.connect(core.home.db_path)
    with conn:
        conn.execute("UPDATE contacts SET company_id = ? WHERE last_name >= 'N000900'", (acme.id,))
    conn.close()
    query = ListQuery(company_id=acme.id)
    assert services.contacts.key_at(1100, query)[0] == "n002000 p"
    assert services.contacts.key_at(1200, query) is None


def test_large_orderings_answer_from_old_anchors_while_rebuilding(core, services, monkeypatch):
    monkeypatch.setattr(anchors_module, "SYNC_REBUILD_ANCHORS", 2)
    insert_contacts(core, 3000)
    assert services.contacts.key_at(2500)[0] == "n002500 p"
    services.contacts.create(first_name="A", last_name="Aaa")
    # stale anchors: the key near the asked position, never an error or None
    assert services.contacts.key_at(2500)[0] in ("n002499 p", "n002500 p")
    for thread in threading.enumerate():
        if thread.name == "key-anchors":
            thread.join(10)
    assert services.contacts.key_at(2500)[0] == "n002499 p"  # rebuilt in the background
