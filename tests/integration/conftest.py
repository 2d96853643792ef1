"""Fixtures of the sync server tests: databases (SQLite file, real PostgreSQL), a running server, clients.

The PostgreSQL cluster starts once per test session, only if a test asks for it,
and is removed at the end. Without PostgreSQL installed the PostgreSQL tests are
skipped locally and fail under CI (``CI=true``), where scripts/ensure-system-deps.sh
installs it.
"""

from __future__ import annotations

import os

import pytest

from sync_harness import PostgresCluster, SyncClient, ThreadServer, admin_setup, postgres_bin_dir


@pytest.fixture(scope="session")
def pg_cluster():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (scripts/ensure-system-deps.sh installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty server database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture
def pg_url(pg_cluster):
    return pg_cluster.new_database()


#: The people of most tests: two reps in east, one in west, a manager of both, an admin.
PEOPLE = {
    "alice": ("rep", ["east"]),
    "bob": ("rep", ["east"]),
    "carol": ("rep", ["west"]),
    "mia": ("manager", ["east", "west"]),
    "root": ("admin", []),
}


@pytest.fixture
def people(db_url):
    admin_setup(db_url, PEOPLE, ["east", "west"])
    return db_url


@pytest.fixture
def server(people):
    srv = ThreadServer(people).start()
    yield srv
    srv.stop()


@pytest.fixture
def client_factory(server):
    made: list[SyncClient] = []

    def make(username: str, login: bool = True, **kwargs) -> SyncClient:
        client = SyncClient(server.url, username, **kwargs)
        if login:
            client.login()
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
