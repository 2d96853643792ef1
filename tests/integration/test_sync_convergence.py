"""Random offline edits, deletes and syncs on three devices converge (hypothesis stateful test).

Three users who all see the east team's records edit, create and delete while
offline and sync in any order; after everyone syncs, every device holds the same
records with the same values, and that is what the server holds.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sync_harness import SyncClient

USERS = ("alice", "bob", "mia")
CITIES = st.sampled_from(["Berlin", "Paris", "Rome", "Oslo", None])
NAMES = st.sampled_from(["Acme", "Globex", "Initech", "Umbrella"])


class ThreeDevices(RuleBasedStateMachine):
    url: str = ""

    @initialize()
    def start(self):
        self.clients = [SyncClient(self.url, name) for name in USERS]
        self.observer = SyncClient(self.url, "root")  # reads the server's truth from cursor 0
        for client in (*self.clients, self.observer):
            client.login()
        for client in self.clients:
            client.pull()

    def teardown(self):
        for client in getattr(self, "clients", []):
            client.close()
        if hasattr(self, "observer"):
            self.observer.close()

    def _live_companies(self, client: SyncClient) -> list[str]:
        return sorted(k for k, v in client.store.items() if v.entity == "company" and not v.deleted)

    @rule(who=st.integers(0, 2), name=NAMES, city=CITIES)
    def create(self, who, name, city):
        self.clients[who].create("company", name=name, city=city)

    @rule(who=st.integers(0, 2), pick=st.integers(0, 1000), field=st.sampled_from(["name", "city", "industry"]),
          name=NAMES, city=CITIES)
    def edit(self, who, pick, field, name, city):
        client = self.clients[who]
        ids = self._live_companies(client)
        if ids:
            value = name if field == "name" else city
            client.edit(ids[pick % len(ids)], **{field: value})

    @rule(who=st.integers(0, 2), pick=st.integers(0, 1000))
    def delete(self, who, pick):
        client = self.clients[who]
        ids = self._live_companies(client)
        if ids:
            client.delete(ids[pick % len(ids)])

    @rule(who=st.integers(0, 2))
    def sync(self, who):
        self.clients[who].sync()

    @invariant()
    def nothing_rejected(self):
        for client in getattr(self, "clients", []):
            assert client.rejected == [], client.rejected

    @precondition(lambda self: hasattr(self, "clients"))
    @rule()
    def everyone_syncs_and_converges(self):
        for client in self.clients:
            client.sync()
        for client in self.clients:
            client.pull()
        views = [{k: v for k, v in c.live().items() if "username" not in v} for c in self.clients]
        assert views[0] == views[1] == views[2]
        self.observer.store, self.observer.cursor = {}, "0"
        self.observer.pull()
        server_view = {k: v for k, v in self.observer.live().items() if "username" not in v}
        assert views[0] == server_view


@pytest.mark.slow
def test_three_devices_converge(server):
    ThreeDevices.url = server.url
    run_state_machine_as_test(ThreeDevices, settings=settings(
        max_examples=6, stateful_step_count=25, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
