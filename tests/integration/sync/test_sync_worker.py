"""The background worker: a nudge from the server reaches an open client within 2 seconds."""

from __future__ import annotations

import threading
import time

from crm_desktop.sync.worker import SyncWorker
from desktop_harness import clients, server  # noqa: F401  (fixtures)


def test_a_nudge_reaches_an_open_client_within_two_seconds(clients):
    a, b = clients("alice"), clients("bob")
    statuses = []
    idle = threading.Event()

    def on_status(status):
        statuses.append(status)
        if status.state == "idle" and status.report is not None:
            idle.set()

    worker = SyncWorker(b.sync_service, on_status=on_status, interval=600).start()
    try:
        assert idle.wait(20), statuses
        time.sleep(0.5)  # the listener connects once the first sync succeeded
        contact = a.services.contacts.create(first_name="Nudge", last_name="Received")
        a.sync()
        pushed_at = time.monotonic()
        while time.monotonic() - pushed_at < 2.0:
            if b.services.contacts.find(contact.id) is not None:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - pushed_at
        assert b.services.contacts.find(contact.id) is not None, f"not there after {elapsed:.2f} s"
    finally:
        worker.stop()
    assert any(s.state == "syncing" for s in statuses)


def test_offline_is_one_state_with_backoff(clients, tmp_path):
    from crm_desktop.sync.http import Transport

    a = clients("alice")
    a.sync_service.transport_factory = lambda url: Transport("http://127.0.0.1:9")
    a.services.contacts.create(first_name="Off", last_name="Line")
    seen = []
    worker = SyncWorker(a.sync_service, on_status=seen.append, interval=600, listen=False,
                        sleep_backoff=lambda: iter([0.2, 0.4, 600])).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(s.state == "offline" for s in seen) < 3:
            time.sleep(0.05)
    finally:
        worker.stop()
    offline = [s for s in seen if s.state == "offline"]
    assert len(offline) == 3 and offline[-1].pending == 1
    assert "cannot reach" in offline[-1].message


def test_each_sync_publishes_sync_finished_with_its_counts(clients):
    """The worker's syncs (and `crm-desktop sync`) tell the app's event bus, so plugins listening to
    ``sync.finished`` (the reporting dashboard) refresh after records arrived by sync."""
    a, b = clients("alice"), clients("bob")
    events = []
    for client in (a, b):
        client.sync_service.events = client.core.events
        client.core.events.subscribe(lambda e, who=client.name: events.append((who, e.name, e.payload, e.source)))
    a.services.contacts.create(first_name="Ann", last_name="Lee")
    a.services.contacts.create(first_name="Bo", last_name="Stone")
    report = a.sync()
    finished = [e for e in events if e[1] == "sync.finished"]
    assert report.pushed == 2
    assert finished == [("alice", "sync.finished", {"pushed": 2, "pulled": report.pulled, "conflicts": 0,
                                                    "rejected": 0, "ok": True}, "sync")]
    idle = threading.Event()
    worker = SyncWorker(b.sync_service, on_status=lambda s: s.report is not None and idle.set(), interval=600,
                        listen=False).start()
    try:
        assert idle.wait(20)
    finally:
        worker.stop()
    bob = [e for e in events if e[0] == "bob" and e[1] == "sync.finished"]
    assert len(bob) == 1 and bob[0][2]["pulled"] >= 2 and bob[0][2]["pushed"] == 0 and bob[0][3] == "sync"


def test_a_sync_that_never_reached_the_server_publishes_nothing(clients):
    from crm_desktop.sync.http import Transport

    a = clients("alice")
    events = []
    a.sync_service.events = a.core.events
    a.core.events.subscribe(events.append)
    a.sync_service.transport_factory = lambda url: Transport("http://127.0.0.1:9")
    a.services.contacts.create(first_name="Off", last_name="Line")
    events.clear()
    report = a.sync_service.sync()
    assert report.offline and [e for e in events if e.name == "sync.finished"] == []
