"""Out-of-order commits, concurrent pushers, and a server killed mid-push."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from conftest import PEOPLE
from sync_harness import ProcessServer, SyncClient, admin_setup

from crm_desktop.sync import protocol as p
from crm_server import auth, push
from crm_server.db import Database

S = p.MutationStatus


def test_a_commit_behind_the_cursor_is_never_skipped_on_postgresql(pg_url):
    """Transaction A writes first and commits last; a pull in between must not move past A's change."""
    from sync_harness import ThreadServer

    admin_setup(pg_url, PEOPLE, ["east", "west"])
    server = ThreadServer(pg_url).start()
    alice, bob, root = (SyncClient(server.url, n) for n in ("alice", "bob", "root"))
    try:
        for c in (alice, bob, root):
            c.login()
        root.pull()
        db = Database(pg_url)
        with db.read() as session:
            who = auth.principal_for_token(session, alice.access)
        written, release = threading.Event(), threading.Event()

        def slow_push():
            with db.write() as session:
                push.push(session, who, [p.Mutation(mutation_id=1, entity="company", id="slow", op="create",
                                                    fields={"name": [None, "Slow"]})])
                written.set()
                release.wait(20)

        slow = threading.Thread(target=slow_push)
        slow.start()
        assert written.wait(20)
        bob.create("company", "fast", name="Fast")
        bob.push()  # commits while the slow transaction is still open
        assert "fast" not in {c.id for c in root.pull()}  # held back, not skipped
        release.set()
        slow.join()
        assert {"slow", "fast"} <= {c.id for c in root.pull()}
        db.dispose()
    finally:
        for c in (alice, bob, root):
            c.close()
        server.stop()


def test_concurrent_pushers_while_another_client_pulls_continuously(pg_url):
    """Several workers of one PostgreSQL, four devices pushing at once, an admin pulling all the while."""
    admin_setup(pg_url, PEOPLE, ["east", "west"])
    server = ProcessServer(pg_url, workers=2).start()
    pushers = [SyncClient(server.url, n) for n in ("alice", "bob", "carol", "mia")]
    puller = SyncClient(server.url, "root")
    try:
        for c in (*pushers, puller):
            c.login()
        stop = threading.Event()
        errors: list[BaseException] = []
        pulls = 0

        def pushing(client: SyncClient, index: int):
            try:
                for round_ in range(12):
                    ids = [client.create("company", name=f"{client.username} {round_}.{i}") for i in range(4)]
                    client.push()
                    client.edit(ids[0], city=f"City {round_}")
                    client.push()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def pulling():
            nonlocal pulls
            try:
                while not stop.is_set():  # one page at a time, applied with its cursor
                    page = puller.pull_page(limit=7)
                    for change in page.changes:
                        puller._apply(change, set())
                    puller.cursor = page.cursor
                    pulls += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=pushing, args=(c, i)) for i, c in enumerate(pushers)]
        reader = threading.Thread(target=pulling)
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        reader.join(60)
        assert errors == []
        puller.pull()
        fresh = SyncClient(server.url, "root")
        fresh.login()
        fresh.pull()
        fresh.close()
        expected = {k: v for k, v in fresh.live().items() if "username" not in v}
        got = {k: v for k, v in puller.live().items() if "username" not in v}
        assert len(expected) == 4 * 12 * 4
        assert got == expected  # every record, every field, at its last version
        assert pulls > 20  # the puller really ran alongside the pushers
    finally:
        for c in (*pushers, puller):
            c.close()
        server.stop()


@pytest.mark.parametrize("kill_after", [0.05, 0.4])
def test_the_server_killed_mid_push_then_a_retry_is_idempotent(db_url, kill_after):
    admin_setup(db_url, PEOPLE, ["east", "west"])
    server = ProcessServer(db_url).start()
    alice = SyncClient(server.url, "alice")
    alice.login()
    ids = [alice.create("company", name=f"Batch {i}") for i in range(800)]
    batch = list(alice.outbox)
    outcome: list[object] = []

    def send():
        try:
            outcome.append(alice.push_raw(batch))
        except (httpx.HTTPError, Exception) as exc:  # noqa: BLE001 - the connection dies with the server
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(kill_after)
    server.kill()
    sender.join(30)
    alice.close()

    server = ProcessServer(db_url).start()  # same database, a new process
    try:
        alice = SyncClient(server.url, "alice", device_id=alice.device_id)
        alice.login()
        response = alice.push_raw(batch)
        statuses = {r.status for r in response.results}
        assert statuses in ({S.APPLIED}, {S.DUPLICATE}), statuses  # all or nothing was committed
        assert alice.push_raw(batch).results[0].status == S.DUPLICATE
        alice.outbox.clear()
        alice.pull()
        companies = {k: v for k, v in alice.store.items() if v.entity == "company"}
        assert set(companies) == set(ids) and {v.version for v in companies.values()} == {1}
        alice.close()
        # and each change exactly once in the log
        db = Database(db_url)
        from sqlalchemy import func, select

        from crm_server.models import Change
        with db.read() as session:
            assert session.scalar(select(func.count()).where(Change.entity == "company")) == 800
        db.dispose()
    finally:
        server.stop()
