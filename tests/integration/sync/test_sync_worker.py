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
