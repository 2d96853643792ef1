"""Two and three clients against the real server over HTTP: outbox, push, pull, rebase, conflicts."""

from __future__ import annotations

import json

from crm_desktop.sync import outbox
from desktop_harness import clients, server  # noqa: F401  (fixtures)


def _outbox(client):
    with client.core.db.read_connection() as c:
        return outbox.pending(c.connection.driver_connection, 1000)


def test_an_edit_writes_its_outbox_row_in_the_same_transaction(clients):
    a = clients("alice")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    a.services.contacts.update(contact.id, city="London")
    rows = _outbox(a)
    assert [(r.op, r.record_id) for r in rows] == [("create", contact.id), ("update", contact.id)]
    assert rows[1].fields == {"city": [None, "London"]}
    assert rows[0].fields["first_name"] == [None, "Ada"]
    assert rows[0].mutation_id < rows[1].mutation_id


def test_two_clients_converge_and_keep_edits_to_different_fields(clients):
    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace")
    report = a.sync()
    assert report.pushed == 1
    b.sync()
    assert b.services.contacts.get(contact.id).last_name == "Lovelace"
    # offline, both edit different fields of the same record
    a.services.contacts.update(contact.id, city="London")
    b.services.contacts.update(contact.id, job_title="Mathematician")
    a.sync(); b.sync(); a.sync()
    for c in (a, b):
        got = c.services.contacts.get(contact.id)
        assert (got.city, got.job_title) == ("London", "Mathematician")
    assert _outbox(a) == [] and _outbox(b) == []


def test_same_field_conflict_is_kept_and_resolved_keep_mine(clients):
    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", city="Paris")
    a.sync(); b.sync()
    a.services.contacts.update(contact.id, city="London")
    b.services.contacts.update(contact.id, city="Berlin")
    a.sync()
    report = b.sync()
    assert report.conflicts == 1
    [conflict] = resolve.conflicts(b.core.db)
    assert conflict.fields == [{"field": "city", "base": "Paris", "mine": "Berlin", "theirs": "London"}]
    assert b.services.contacts.get(contact.id).city == "London"  # the server's value meanwhile
    resolve.keep_mine(b.services, conflict.id)
    assert b.services.contacts.get(contact.id).city == "Berlin"
    assert resolve.conflicts(b.core.db) == []
    b.sync(); a.sync()
    assert a.services.contacts.get(contact.id).city == "Berlin"


def test_same_field_conflict_resolved_take_theirs(clients):
    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", city="Paris")
    a.sync(); b.sync()
    a.services.contacts.update(contact.id, city="London")
    b.services.contacts.update(contact.id, city="Berlin", job_title="Countess")
    a.sync(); b.sync()
    [conflict] = resolve.conflicts(b.core.db)
    resolve.take_theirs(b.services, conflict.id)
    b.sync(); a.sync()
    for c in (a, b):
        got = c.services.contacts.get(contact.id)
        assert (got.city, got.job_title) == ("London", "Countess")
    assert _outbox(b) == []


def test_pull_rebases_a_row_with_pending_edits(clients):
    """A pull landing while a local edit waits keeps the local field and takes the others."""
    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace")
    a.sync(); b.sync()
    a.services.contacts.update(contact.id, city="London")
    a.sync()
    b.services.contacts.update(contact.id, job_title="Mathematician")
    b.sync_service.engine().pull(__import__("crm_desktop.sync.engine", fromlist=["SyncReport"]).SyncReport())
    got = b.services.contacts.get(contact.id)
    assert (got.city, got.job_title) == ("London", "Mathematician")
    assert len(_outbox(b)) == 1
    b.sync(); a.sync()
    assert a.services.contacts.get(contact.id).job_title == "Mathematician"


def test_pull_rebase_detects_a_same_field_conflict(clients):
    from crm_desktop.sync import resolve
    from crm_desktop.sync.engine import SyncReport

    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", city="Paris")
    a.sync(); b.sync()
    a.services.contacts.update(contact.id, city="London")
    a.sync()
    b.services.contacts.update(contact.id, city="Berlin")
    b.sync_service.engine().pull(SyncReport())  # the pull lands before b's push
    [conflict] = resolve.conflicts(b.core.db)
    assert conflict.fields[0]["mine"] == "Berlin" and conflict.fields[0]["theirs"] == "London"
    b.sync(); a.sync()
    assert a.services.contacts.get(contact.id).city == "London"  # nothing overwritten silently


def test_three_clients_in_different_orders_converge(clients):
    a, b, c = clients("alice"), clients("bob"), clients("carol")
    company = a.services.companies.create(name="Analytical Engines Ltd")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", company_id=company.id)
    a.sync(); b.sync(); c.sync()
    a.services.contacts.update(contact.id, city="London")
    b.services.contacts.update(contact.id, phone="+44 20 7946 0000")
    c.services.companies.update(company.id, website="https://engines.example")
    c.services.contacts.update(contact.id, notes="met at the Royal Society")
    new = b.services.companies.create(name="Difference Co")
    for order in ((c, a, b), (b, c, a), (a, b, c)):
        for client in order:
            client.sync()
    states = []
    for client in (a, b, c):
        got = client.services.contacts.get(contact.id)
        comp = client.services.companies.get(company.id)
        states.append((got.city, got.phone, got.notes, comp.website, client.services.companies.get(new.id).name))
    assert states[0] == states[1] == states[2]
    assert states[0][0] == "London" and states[0][2] == "met at the Royal Society"
    assert states[0][3] == "https://engines.example"


def test_a_rejected_mutation_does_not_block_the_queue(clients):
    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    pipeline = a.services.pipelines.default()
    a.services.pipelines.update(pipeline.id, name="My pipeline")  # reps may not change pipelines
    contact = a.services.contacts.create(first_name="Grace", last_name="Hopper")
    report = a.sync()
    assert report.rejected == 1 and report.pushed == 1
    [problem] = resolve.problems(a.core.db)
    assert problem.entity == "pipeline" and problem.reason == "permission"
    assert "managers" in problem.message
    b.sync()
    assert b.services.contacts.get(contact.id).last_name == "Hopper"
    # the next sync does not send it again, and discarding it puts the server's value back
    assert a.sync().rejected == 0
    resolve.discard(a.services, problem.mutation_id)
    assert a.services.pipelines.get(pipeline.id).name == "Sales"
    assert resolve.problems(a.core.db) == []


def test_deletes_sync_and_a_tombstone_hides_the_record(clients):
    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Tombstonova")
    a.sync(); b.sync()
    assert [c.id for c in a.services.contacts.search("Tombstonova")] == [contact.id]
    b.services.contacts.delete(contact.id)
    b.sync(); a.sync()
    assert a.services.contacts.find(contact.id) is None
    assert a.services.contacts.search("Tombstonova") == []


def test_tags_travel_as_ids(clients):
    a, b = clients("alice"), clients("bob")
    contact = a.services.contacts.create(first_name="Ada", last_name="Lovelace", tags=["VIP", "London"])
    a.sync(); b.sync()
    assert b.services.contacts.get(contact.id).tags == ("London", "VIP")


def test_sync_status(clients):
    a = clients("alice")
    a.services.contacts.create(first_name="Ada", last_name="Lovelace")
    status = a.sync_service.status()
    assert status["pending"] == 1 and status["last_sync"] is None
    a.sync()
    status = a.sync_service.status()
    assert status["pending"] == 0 and status["last_success"] and status["user"] == "alice"


def test_the_server_sees_the_app_version_and_pending_count_the_client_reports(clients, server):
    from crm_desktop import __version__
    from crm_server import devices
    from crm_server.db import Database

    a = clients("alice")
    a.services.contacts.create(first_name="Grace", last_name="Hopper")
    a.sync()
    db = Database(server.db_url)
    try:
        with db.read() as session:
            synced = [d for d in devices.list_devices(session) if d.username == "alice" and d.last_sync_at]
            device = max(synced, key=lambda d: d.last_sync_at)  # the server may serve other tests' devices too
    finally:
        db.dispose()
    assert (device.app_version, device.protocol_version, device.pending_reported) == (__version__, "1", 0)
    assert device.last_sync_at is not None and device.last_cursor not in (None, "0")


def test_own_edits_coming_back_keep_the_search_index_right(clients):
    """Rows that already hold what is pulled (this device's pushed edits, with the server's version)
    only take the new stamps; search must still find their new text, and a teammate's change of the
    same rows must re-index them."""
    from crm_desktop.sync.applier import BULK_INDEX_ROWS

    a, b = clients("alice"), clients("bob")
    count = BULK_INDEX_ROWS + 50  # past the threshold where the update trigger is suspended
    ids = [a.services.contacts.create(first_name="Zed", last_name=f"Oldname{i}z").id for i in range(count)]
    a.sync(); b.sync()
    for n, record_id in enumerate(ids):
        a.services.contacts.update(record_id, last_name=f"Quokka{n}z")
    report = a.sync()
    assert report.pushed == count
    assert {h.id for h in a.services.contacts.search("Quokka7z")} == {ids[7]}
    assert a.services.contacts.search("Oldname7z") == []
    with a.core.db.read_connection() as c:
        versions = {v for (v,) in c.connection.driver_connection.execute(
            f"SELECT version FROM contacts WHERE id IN ({', '.join('?' * len(ids))})", ids)}
    assert versions == {2}
    b.sync()
    assert {h.id for h in b.services.contacts.search("Quokka7z")} == {ids[7]}
    for n, record_id in enumerate(ids):
        b.services.contacts.update(record_id, last_name=f"Wombat{n}z")
    b.sync(); a.sync()
    assert {h.id for h in a.services.contacts.search("Wombat9z")} == {ids[9]}
    assert a.services.contacts.search("Quokka9z") == []
    with a.core.db.read_connection() as c:
        conn = c.connection.driver_connection
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'contacts_fts_au'").fetchone()[0] == 1
