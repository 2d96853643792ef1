"""One write path: nested writes join the thread's transaction, sync columns and changes come from storage."""

from __future__ import annotations

import threading
import time

import pytest

from crm_desktop.errors import ValidationError
from crm_desktop.storage import models


def test_a_service_write_inside_an_open_unit_of_work_commits_quickly(services):
    started = time.perf_counter()
    with services.unit_of_work() as uow:
        company = services.companies.create_in(uow, {"name": "Acme"})
        # what a UI action or a plugin does: call an ordinary service write while one is open
        ann = services.contacts.create(first_name="Ann", last_name="Lee", company_id=company.id)
        services.contacts.update(ann.id, job_title="Buyer")
        assert services.contacts.get(ann.id).job_title == "Buyer"  # reads see the open transaction
    assert time.perf_counter() - started < 2  # no wait for the busy timeout (10 s)
    assert services.contacts.get(ann.id).company_name == "Acme"


def test_events_are_published_once_after_the_outermost_commit(services):
    seen = []
    services.events.subscribe(lambda e: seen.append(e.name))
    with services.unit_of_work():
        services.contacts.create(first_name="Ann")
        assert seen == []  # nested scope done, the transaction is not
    assert seen == ["contact.created"]


def test_an_inner_failure_rolls_back_only_the_inner_scope(services):
    seen = []
    services.events.subscribe(lambda e: seen.append(e.name))
    with services.unit_of_work() as uow:
        kept_id = services.contacts.create_in(uow, {"first_name": "Kept"}).id
        with pytest.raises(ValidationError):
            with services.unit_of_work() as inner:
                services.contacts.create_in(inner, {"first_name": "Lost"})
                services.contacts.update(kept_id, job_title="lost too")
                services.contacts.create(email="not an e-mail")  # fails inside the inner scope
        services.contacts.create(first_name="After")
    names = sorted(c.first_name for c in services.contacts.list().items)
    assert names == ["After", "Kept"]
    assert services.contacts.get(kept_id).job_title is None
    assert seen.count("contact.created") == 2  # the rolled-back scope's events are dropped
    assert [e.action for e in services.audit.recent() if e.entity == "contact"].count("create") == 2


def test_an_outer_failure_rolls_back_what_the_inner_scopes_did(services):
    with pytest.raises(RuntimeError):
        with services.unit_of_work():
            services.contacts.create(first_name="Gone")
            raise RuntimeError("the user cancelled")
    assert services.contacts.count() == 0
    assert [e for e in services.audit.recent() if e.entity == "contact"] == []


def test_two_threads_still_take_turns(services):
    """The ambient transaction is per thread: another thread's writer waits for the lock, then commits."""
    errors = []

    def other():
        try:
            services.contacts.create(first_name="Other")
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)

    with services.unit_of_work() as uow:
        services.contacts.create_in(uow, {"first_name": "Mine"})
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive()  # waiting for the write lock, not joining this thread's transaction
    thread.join(10)
    assert errors == [] and services.contacts.count() == 2


def test_create_and_update_stamp_the_sync_columns_and_make_exactly_one_change(services):
    batches = []
    services.change_listeners.append(lambda session, changes, actor: batches.append(list(changes)))
    ann = services.contacts.create(first_name="Ann", last_name="Lee")
    assert ann.id and ann.created_at == ann.updated_at and ann.version == 0
    time.sleep(0.002)
    updated = services.contacts.update(ann.id, job_title="Buyer")
    assert updated.updated_at > ann.updated_at and updated.created_at == ann.created_at
    with services.db.read_sessions() as session:
        row = session.get(models.Contact, ann.id)
        assert (row.revision, row.version) == (2, 0)  # a local write counts; the server's version is sync's
    [[create], [update]] = batches
    assert create.op == "create" and create.fields["first_name"] == (None, "Ann")
    assert update.op == "update" and update.fields == {"job_title": (None, "Buyer")}
    services.contacts.update(ann.id, job_title="Buyer")  # no real change: no change, no new revision
    services.contacts.delete(ann.id)
    assert [b[0].op for b in batches] == ["create", "update", "delete"]
    with services.db.read_sessions() as session:
        assert session.get(models.Contact, ann.id).revision == 3


def test_owner_and_team_come_from_the_actor(services):
    from crm_desktop.domain.actor import Actor

    rep = services.as_actor(Actor.user("rita", user_id="u-rita", team_id="t-north"))
    company = rep.companies.create(name="Acme")
    with services.db.read_sessions() as session:
        row = session.get(models.Company, company.id)
        assert (row.owner_id, row.team_id) == ("u-rita", "t-north")
    [entry] = services.audit.for_record("company", company.id)
    assert entry.actor_name == "rita" and entry.changes["owner_id"] == [None, "u-rita"]


def test_a_synced_row_cannot_be_written_without_its_change(services):
    from crm_desktop.storage.changes import SyncRowOutsideTransaction

    with services.db.write_sessions() as session:
        session.add(models.Contact(first_name="Sneaky"))
        with pytest.raises(SyncRowOutsideTransaction):
            session.flush()
        session.rollback()
    assert services.contacts.count() == 0


def test_a_bulk_insert_stamps_rows_and_hands_its_changes_over_in_one_batch(services):
    from crm_desktop.storage.changes import insert_synced_rows

    calls = []
    services.change_listeners.append(lambda session, changes, actor: calls.append(list(changes)))
    rows = [{"name": f"Company {i}", "name_key": f"company {i}"} for i in range(500)]
    with services.unit_of_work() as uow:
        insert_synced_rows(uow.transaction, models.Company, rows, audit_action="import")
    assert len(calls) == 1 and len(calls[0]) == 500
    assert {c.op for c in calls[0]} == {"create"} and calls[0][0].fields == {"name": (None, "Company 0")}
    assert services.companies.count() == 500
    with services.db.read_sessions() as session:
        row = session.get(models.Company, rows[0]["id"])
        assert row.created_at == row.updated_at and (row.version, row.revision) == (0, 1)
    [entry] = services.audit.recent(limit=1000, action="import")  # one entry for the batch
    assert entry.entity == "company" and entry.record_id is None and entry.changes["records"] == 500


def test_a_bulk_insert_is_audited_once_and_says_who_created_each_record_and_when(services):
    """The bulk audit is one entry for the batch plus the list of its records: a record's history
    and ``created`` name the import that created it, who ran it and when; a later edit is audited
    with its old and new values as always."""
    from crm_desktop.storage.changes import insert_synced_rows

    calls = []
    services.change_listeners.append(lambda session, changes, actor: calls.append(list(changes)))
    rows = [{"id": "01900000-0000-7000-8000-0000000000c1", "name": "Ünïcode \"quoted\" GmbH", "name_key": "x1", "city": "Köln", "notes": "line\nbreak"},
            {"name": "Plain", "name_key": "x2", "website": None, "owner_id": "01900000-0000-7000-8000-00000000000a"}]
    with services.unit_of_work() as uow:
        changes = insert_synced_rows(uow.transaction, models.Company, rows, audit_action="import",
                                     change_extras={rows[0]["id"]: {"tags": (None, ["a", "b"])}})
    [delivered] = calls
    assert [c.fields for c in delivered] == [c.fields for c in changes]
    for change in delivered:
        [entry] = services.audit.for_record("company", change.record_id)
        assert (entry.action, entry.entity, entry.record_id, entry.actor_name) == (
            "import", "company", change.record_id, services.actor.name)
        assert entry.changes == {"records": 2, "first_id": rows[0]["id"], "last_id": rows[1]["id"]}
        assert services.audit.created("company", change.record_id) == entry
    assert services.audit.for_record("contact", rows[0]["id"]) == []  # another entity's history
    services.companies.update(rows[1]["id"], city="Graz")
    update, created = services.audit.for_record("company", rows[1]["id"])
    assert update.action == "update" and update.changes == {"city": [None, "Graz"]}
    assert services.audit.created("company", rows[1]["id"]) == created and created.action == "import"
    assert delivered[0].fields["tags"] == (None, ["a", "b"]) and "website" not in delivered[1].fields
    assert delivered[1].fields["owner_id"] == (None, "01900000-0000-7000-8000-00000000000a")
