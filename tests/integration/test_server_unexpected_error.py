"""An unexpected server failure still answers in the protocol: JSON error body, an incident id.

Before: a bug in a route (or a failing dependency) made Starlette answer HTTP 500 with the
plain text "Internal Server Error", so the desktop said only "failed with HTTP 500" and the
admin had nothing to look for in the server log.
"""

from __future__ import annotations

import logging
import re

import pytest
import requests

from crm_desktop.sync import protocol as p
from crm_desktop.sync.http import ServerFailed, Transport
from crm_server import auth
from tests.integration.sync_harness import ThreadServer


@pytest.fixture
def broken_server(tmp_path, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("database driver exploded")

    monkeypatch.setattr(auth, "principal_for_token", explode)
    server = ThreadServer(f"sqlite:///{tmp_path / 'server.sqlite3'}").start()
    yield server
    server.stop()


def test_an_unexpected_error_is_a_protocol_error_with_an_incident_id(broken_server, caplog):
    caplog.set_level(logging.ERROR, logger="crm_server.app")
    response = requests.get(f"{broken_server.url}{p.API_PREFIX}/sync/pull", timeout=10,
                            headers={p.PROTOCOL_HEADER: p.PROTOCOL_VERSION, "Authorization": "Bearer x"})
    assert response.status_code == 500
    body = p.ErrorBody.model_validate(response.json())
    assert body.error == "internal_error"
    incident = re.search(r"incident ([0-9a-f]{8})", body.detail).group(1)
    assert "exploded" not in body.detail  # internals stay in the server log
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged and logged[0].exc_info, "the server log names the incident with its traceback"

    # the desktop client passes the sentence on, with that request's own incident id
    with pytest.raises(ServerFailed, match=r"HTTP 500: the server failed unexpectedly \(incident [0-9a-f]{8}\)"):
        Transport(broken_server.url).request("GET", "/sync/pull", token="x")
