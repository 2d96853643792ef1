from __future__ import annotations

import pytest

from desktop_harness import make_client, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def clients(tmp_path, server, memory_keyring):
    made = []

    def make(user: str, login: bool = True):
        c = make_client(tmp_path, server, user, memory_keyring, login)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
