"""Push, merge, pull and scope over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sync_harness import set_user

from crm_desktop.sync import protocol as p

S = p.MutationStatus


def _m(mutation_id, entity, record_id, op, fields=None, base_version=0):
    return p.Mutation(mutation_id=mutation_id, entity=entity, id=record_id, op=op, fields=fields or {},
                      base_version=base_version)


def test_push_is_exactly_once_a_resend_is_answered_duplicate(client_factory):
    alice = client_factory("alice")
    batch = [_m(1, "company", "c-1", "create", {"name": [None, "Acme"]}),
             _m(2, "company", "c-1", "update", {"city": [None, "Berlin"]}, 1)]
    first = alice.push_raw(batch)
    assert [r.status for r in first.results] == [S.APPLIED, S.APPLIED]
    assert [r.version for r in first.results] == [1, 2] and first.last_mutation_id == 2

    again = alice.push_raw(batch)  # the answer was lost; the client sends the same batch again
    assert [r.status for r in again.results] == [S.DUPLICATE, S.DUPLICATE]
    assert again.results[1].original.status == S.APPLIED and again.results[1].version == 2
    alice.pull()
    assert alice.store["c-1"].version == 2 and alice.store["c-1"].data["city"] == "Berlin"


def test_edits_to_different_fields_both_survive_and_the_same_field_conflicts(client_factory):
    alice, bob = client_factory("alice"), client_factory("bob")
    cid = alice.create("contact", first_name="Ann", last_name="Lee", email="ann@example.com")
    alice.sync()
    bob.pull()
    assert bob.live()[cid]["last_name"] == "Lee"

    alice.edit(cid, phone="+49 30 1234567", email="ann@acme.example")
    bob.edit(cid, city="Hamburg", email="ann.lee@example.com")
    alice.sync()
    results = bob.push()
    assert results[0].status == S.CONFLICT and results[0].conflict == p.ConflictKind.FIELDS
    assert results[0].applied_fields == ["city"]
    (conflict,) = results[0].conflicts
    assert (conflict.field, conflict.base, conflict.mine, conflict.theirs) == (
        "email", "ann@example.com", "ann.lee@example.com", "ann@acme.example")
    assert results[0].theirs["phone"] == "+49 30 1234567"
    alice.pull()
    bob.pull()
    expected = {"phone": "+49 30 1234567", "city": "Hamburg", "email": "ann@acme.example"}
    for client in (alice, bob):
        assert {k: client.live()[cid][k] for k in expected} == expected
    assert alice.live() == bob.live()


def test_a_rejected_mutation_does_not_block_the_ones_behind_it(client_factory):
    alice = client_factory("alice")
    response = alice.push_raw([
        _m(1, "company", "c-ok-1", "create", {"name": [None, "First"]}),
        _m(2, "company", "c-bad", "create", {"name": [None, "Bad"], "email": [None, "not-an-address"]}),
        _m(3, "contact", "p-unknown", "update", {"city": [None, "Rome"]}, 4),
        _m(4, "spaceship", "s-1", "create", {"name": [None, "X"]}),
        _m(5, "pipeline", "pl-1", "create", {"name": [None, "Mine"]}),
        _m(6, "company", "c-ok-2", "create", {"name": [None, "Second"]}),
    ])
    statuses = [(r.status, r.reason) for r in response.results]
    assert statuses == [
        (S.APPLIED, None),
        (S.REJECTED, p.RejectReason.VALIDATION),
        (S.REJECTED, p.RejectReason.UNKNOWN_RECORD),
        (S.REJECTED, p.RejectReason.VALIDATION),
        (S.REJECTED, p.RejectReason.PERMISSION),
        (S.APPLIED, None),
    ]
    assert "company.email: 'not-an-address' is invalid: must be an e-mail address" in response.results[1].message
    assert "only managers and admins change pipelines" == response.results[4].message
    assert response.last_mutation_id == 6  # rejected ones are acknowledged too
    alice.pull()
    assert {r.data["name"] for r in alice.store.values() if r.entity == "company"} == {"First", "Second"}


def test_delete_against_an_edit_and_edit_against_a_delete(client_factory):
    alice, bob = client_factory("alice"), client_factory("bob")
    kept = alice.create("company", name="Kept")
    gone = alice.create("company", name="Gone")
    alice.sync()
    bob.pull()

    # bob edits 'Kept' while alice, offline, deletes it: the edit wins, alice's delete is a conflict
    bob.edit(kept, city="Paris")
    bob.sync()
    alice.delete(kept)
    (result,) = alice.push()
    assert result.status == S.CONFLICT and result.conflict == p.ConflictKind.EDITED
    assert result.theirs["city"] == "Paris"
    alice.pull()
    assert alice.live()[kept]["city"] == "Paris"
    # confirming the delete against the version she now has deletes it
    alice.delete(kept)
    assert alice.push()[0].status == S.APPLIED

    # alice deletes 'Gone' while bob edits it: bob's edit is a conflict of kind deleted, nothing applied
    alice.delete(gone)
    alice.sync()
    bob.edit(gone, city="Oslo")
    (result,) = bob.push()
    assert result.status == S.CONFLICT and result.conflict == p.ConflictKind.DELETED
    bob.pull()
    assert gone not in bob.live() and kept not in bob.live()
    # keep mine: a create of the whole record restores it
    bob.outbox.append(_m(bob.next_mutation_id, "company", gone, "create", {"name": [None, "Gone"],
                                                                           "city": [None, "Oslo"]}))
    assert bob.push()[0].status == S.APPLIED
    alice.pull()
    assert alice.live()[gone]["city"] == "Oslo"


def test_one_device_deleting_what_it_just_edited_is_not_a_conflict(client_factory):
    alice = client_factory("alice")
    cid = alice.create("company", name="Short-lived")
    alice.sync()
    alice.edit(cid, city="Rome")
    alice.delete(cid)  # same outbox, same stale base version: no one else touched it
    assert [r.status for r in alice.push()] == [S.APPLIED, S.APPLIED]


def test_scope_reps_see_their_team_managers_their_teams_admins_all(client_factory):
    alice, bob, carol = client_factory("alice"), client_factory("bob"), client_factory("carol")
    mia, root = client_factory("mia"), client_factory("root")
    east = alice.create("company", name="East Co")
    alice.sync()
    west = carol.create("company", name="West Co")
    carol.sync()
    for client in (bob, mia, root):
        client.pull()
    companies = lambda c: {v["name"] for v in c.live().values() if "name" in v and "username" not in v}  # noqa: E731
    assert companies(bob) == {"East Co"}
    assert companies(mia) == companies(root) == {"East Co", "West Co"}
    carol.pull()
    assert companies(carol) == {"West Co"}
    # users are shared reference data: everyone has the user list
    assert {v["username"] for v in carol.live().values() if "username" in v} == {"alice", "bob", "carol", "mia", "root"}

    # the push obeys the same rule: carol cannot touch the east company, nor move hers out of her scope
    (result,) = carol.push_raw([_m(carol.next_mutation_id, "company", east, "update",
                                   {"city": [None, "X"]}, 1)]).results
    assert result.status == S.REJECTED and result.reason == p.RejectReason.SCOPE
    (result,) = carol.push_raw([_m(carol.next_mutation_id + 1, "company", west, "update",
                                   {"team_id": [carol.live()[west]["team_id"], alice.live()[east]["team_id"]],
                                    "owner_id": [carol.live()[west]["owner_id"], None]}, 1)]).results
    assert result.status == S.REJECTED and result.reason == p.RejectReason.SCOPE


def test_a_record_moving_teams_is_removed_from_those_who_lost_it(client_factory):
    alice, bob, carol, root = (client_factory(n) for n in ("alice", "bob", "carol", "root"))
    cid = alice.create("company", name="Mover")
    alice.sync()
    for client in (bob, carol, root):
        client.pull()
    assert cid in bob.live() and cid not in carol.live()
    west_team = carol.login().user.teams[0]

    root.edit(cid, team_id=west_team, owner_id=None)  # the admin gives the account to the west team
    root.sync()
    removed = [c for c in bob.pull() if c.id == cid]
    assert [c.kind for c in removed] == [p.ChangeKind.REMOVE] and cid not in bob.live()
    gained = [c for c in carol.pull() if c.id == cid]
    assert [c.kind for c in gained] == [p.ChangeKind.UPSERT] and carol.live()[cid]["name"] == "Mover"
    alice.pull()  # she no longer owns it either
    assert cid not in alice.live()


def test_a_user_moving_teams_loses_the_old_team_and_gains_the_new_one_incrementally(client_factory, people):
    alice, bob, carol = client_factory("alice"), client_factory("bob"), client_factory("carol")
    east = alice.create("company", name="East Co")
    own = bob.create("company", name="Bob's own")
    alice.sync()
    bob.sync()
    west = carol.create("company", name="West Co")
    carol.sync()
    bob.pull()
    assert {east, own} <= set(bob.live()) and west not in bob.live()
    cursor_before = bob.cursor

    set_user(people, "bob", teams=["west"])
    changes = {c.id: c.kind for c in bob.pull()}
    assert changes[east] == p.ChangeKind.REMOVE and changes[west] == p.ChangeKind.UPSERT
    assert own in bob.live() and east not in bob.live() and west in bob.live()  # his own record stays his
    assert bob.cursor != cursor_before
    # incremental: the move sent only the affected records, not everything again
    assert own not in changes or changes[own] != p.ChangeKind.REMOVE


def test_pull_pages_with_a_cursor_and_misses_nothing(client_factory):
    alice, bob = client_factory("alice"), client_factory("bob")
    ids = [alice.create("company", name=f"Co {i:03}") for i in range(120)]
    alice.sync()
    pages = 0
    while True:
        page = bob.pull_page(limit=25)
        for change in page.changes:
            bob._apply(change, set())
        bob.cursor = page.cursor
        pages += 1
        if not page.has_more:
            break
    assert pages >= 5 and set(ids) <= set(bob.live())
    assert bob.pull() == []  # nothing new: an empty page at the same place


def test_invalid_cursor_is_a_clear_400(client_factory):
    alice = client_factory("alice")
    alice.cursor = "not-a-cursor"
    with pytest.raises(Exception) as failure:
        alice.pull()
    assert failure.value.status == 400 and failure.value.body["error"] == "invalid_cursor"


def test_a_nudge_reaches_an_open_client_within_two_seconds(client_factory):
    alice, bob = client_factory("alice"), client_factory("bob")
    events: list[tuple[float, str]] = []
    ready = threading.Event()

    def listen():
        for event, _data in bob.events():
            events.append((time.monotonic(), event))
            if event == "ready":
                ready.set()
            if event == "changes":
                return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    started = time.monotonic()
    cid = alice.create("company", name="Nudged")
    alice.sync()
    listener.join(timeout=5)
    nudges = [t for t, e in events if e == "changes"]
    assert nudges and nudges[0] - started < 2.0
    bob.pull()
    assert cid in bob.live()


def test_a_disabled_users_event_stream_ends(client_factory, people):
    carol = client_factory("carol")
    alice = client_factory("alice")
    seen: list[str] = []

    def listen():
        for event, _data in carol.events():
            seen.append(event)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    set_user(people, "carol", disabled=True)
    alice.create("company", name="Wake-up")  # any change wakes the streams, which re-check the session
    alice.sync()
    listener.join(timeout=5)
    assert not listener.is_alive() and seen[-1] == "signed_out"


def test_one_batch_mixing_every_outcome_answers_each_mutation_in_order(client_factory):
    """The batch is merged set-based; each answer must still be what one-by-one application gives."""
    alice, bob = client_factory("alice"), client_factory("bob")
    shared = alice.create("company", name="Shared", city="Oslo")
    doomed = alice.create("company", name="Doomed")
    alice.sync()
    bob.pull()
    bob.edit(shared, city="Bergen")
    bob.edit(doomed, city="Rome")  # so alice's delete below meets an edit by another device
    bob.sync()
    first = alice.next_mutation_id
    batch = [
        _m(first, "company", "mix-1", "create", {"name": [None, "New"]}),
        _m(first + 1, "company", "mix-1", "update", {"city": [None, "Paris"]}, 1),
        _m(first + 2, "company", shared, "update", {"city": ["Oslo", "Turku"]}, 1),  # bob changed it
        _m(first + 3, "company", "nobody", "update", {"city": [None, "X"]}, 1),
        _m(first + 4, "contact", "mix-2", "create", {"email": [None, "not an address"]}),
        _m(first + 5, "company", doomed, "delete", base_version=1),
        _m(first + 6, "company", "mix-1", "update", {"name": ["New", "Newer"]}, 2),
        _m(first + 1, "company", "mix-1", "update", {"city": [None, "Paris"]}, 1),  # resent inside the batch
    ]
    answer = alice.push_raw(batch)
    assert [(r.status, r.version) for r in answer.results] == [
        (S.APPLIED, 1), (S.APPLIED, 2), (S.CONFLICT, 2), (S.REJECTED, None), (S.REJECTED, None),
        (S.CONFLICT, 2), (S.APPLIED, 3), (S.DUPLICATE, 2)]
    assert answer.results[2].conflicts[0].theirs == "Bergen"
    assert answer.results[3].reason == p.RejectReason.UNKNOWN_RECORD
    assert answer.results[4].reason == p.RejectReason.VALIDATION
    assert answer.results[5].conflict == p.ConflictKind.EDITED
    assert answer.results[7].original.status == S.APPLIED
    assert answer.last_mutation_id == first + 6

    resent = alice.push_raw(batch + [_m(first + 7, "company", "mix-1", "update", {"city": ["Paris", "Lyon"]}, 3)])
    assert [r.status for r in resent.results] == [S.DUPLICATE] * 8 + [S.APPLIED]
    assert [r.original.status for r in resent.results[:7]] == [r.status for r in answer.results[:7]]
    bob.pull()
    assert bob.store["mix-1"].version == 4
    assert (bob.live()["mix-1"]["name"], bob.live()["mix-1"]["city"]) == ("Newer", "Lyon")
    assert bob.live()[doomed]["city"] == "Rome"


def test_a_full_batch_of_creates_and_updates_applies_and_resends_as_duplicates(client_factory):
    alice, bob = client_factory("alice"), client_factory("bob")
    batch = [_m(i + 1, "contact", f"bulk-{i}", "create", {"last_name": [None, f"Name {i}"]}) for i in range(600)]
    batch += [_m(601 + i, "contact", f"bulk-{i}", "update", {"city": [None, "Oslo"]}, 1) for i in range(400)]
    answer = alice.push_raw(batch)
    assert all(r.status == S.APPLIED for r in answer.results)
    assert [r.version for r in answer.results[598:602]] == [1, 1, 2, 2]
    assert all(r.status == S.DUPLICATE for r in alice.push_raw(batch).results)
    bob.pull()
    assert len([k for k in bob.live() if k.startswith("bulk-")]) == 600 and bob.live()["bulk-0"]["city"] == "Oslo"
    assert {bob.store[f"bulk-{i}"].version for i in range(400)} == {2}
