"""Signing in to the sync server over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from sync_harness import ApiFailure, set_user

from crm_desktop.sync import protocol as p


def test_login_answers_tokens_and_the_user(client_factory):
    client = client_factory("alice")
    pair = client.login()
    assert pair.user.username == "alice" and pair.user.role == "rep" and len(pair.user.teams) == 1
    assert pair.expires_in == 900 and pair.refresh_token and pair.device_id == client.device_id


def test_wrong_password_is_refused_and_then_rate_limited(client_factory):
    client = client_factory("alice", login=False, password="wrong-password")
    for _ in range(5):
        with pytest.raises(ApiFailure) as failure:
            client.login()
        assert failure.value.status == 401 and failure.value.body["error"] == "bad_credentials"
    # the sixth attempt within a minute is refused before the password is even checked, right or wrong
    client.password = "password-alice"
    with pytest.raises(ApiFailure) as failure:
        client.login()
    assert failure.value.status == 429 and "wait a minute" in failure.value.body["detail"]


def test_refresh_rotates_and_a_reused_refresh_token_signs_the_device_out(client_factory):
    client = client_factory("alice")
    first_refresh = client.refresh_token
    client.refresh()
    assert client.refresh_token != first_refresh
    client.pull()  # the new access token works

    stolen = p.RefreshRequest(refresh_token=first_refresh).model_dump()
    with pytest.raises(ApiFailure) as failure:
        client.call("POST", "/auth/refresh", json_body=stolen, auth=False)
    assert failure.value.body["error"] == "refresh_reused"
    # the whole device session is revoked: its access token and its newest refresh token stop working
    with pytest.raises(ApiFailure) as failure:
        client.pull()
    assert failure.value.status == 401 and failure.value.body["error"] == "session_revoked"
    with pytest.raises(ApiFailure):
        client.refresh()
    client.login()  # signing in again works, on the same device
    client.pull()


def test_a_refresh_whose_answer_was_lost_can_be_retried(client_factory):
    """The client was killed after the server rotated its token but before the new pair reached the keyring."""
    client = client_factory("alice")
    kept = client.refresh_token  # what the keyring still holds
    lost = client.call("POST", "/auth/refresh", auth=False, json_body={"refresh_token": kept})

    client.refresh()  # the restarted client refreshes with the token it kept: not signed out
    client.pull()
    # the pair that never arrived is dropped: it can neither refresh nor sign the device out
    with pytest.raises(ApiFailure) as failure:
        client.call("POST", "/auth/refresh", auth=False, json_body={"refresh_token": lost["refresh_token"]})
    assert failure.value.status == 401 and failure.value.body["error"] == "unauthorized"
    client.pull()

    # once the new pair was used, the old token coming back is a copy: the device is signed out
    with pytest.raises(ApiFailure) as failure:
        client.call("POST", "/auth/refresh", auth=False, json_body={"refresh_token": kept})
    assert failure.value.body["error"] == "refresh_reused"
    with pytest.raises(ApiFailure) as failure:
        client.pull()
    assert failure.value.body["error"] == "session_revoked"


def test_a_copied_token_used_first_signs_the_device_out_when_the_owner_comes_back(client_factory):
    owner = client_factory("alice")
    copied = owner.refresh_token
    thief = client_factory("alice", login=False)
    thief.refresh_token = copied
    thief.refresh()
    thief.pull()  # the thief uses the pair it got
    with pytest.raises(ApiFailure) as failure:
        owner.refresh()
    assert failure.value.body["error"] == "refresh_reused"
    with pytest.raises(ApiFailure) as failure:
        thief.pull()
    assert failure.value.body["error"] == "session_revoked"


def test_logout_ends_the_session(client_factory):
    client = client_factory("bob")
    client.call("POST", "/auth/logout", json_body={})
    with pytest.raises(ApiFailure) as failure:
        client.pull()
    assert failure.value.body["error"] == "session_revoked"


def test_a_device_of_one_user_cannot_sign_in_as_another(client_factory):
    alice = client_factory("alice")
    with pytest.raises(ApiFailure) as failure:
        client_factory("bob", device_id=alice.device_id)
    assert failure.value.status == 409 and failure.value.body["error"] == "device_in_use"


def test_a_disabled_user_stops_syncing_at_once(client_factory, people):
    client = client_factory("carol")
    client.create("contact", last_name="Before")
    client.sync()
    set_user(people, "carol", disabled=True)
    with pytest.raises(ApiFailure) as failure:  # the access token is still unexpired: refused anyway
        client.pull()
    assert failure.value.status == 403 and failure.value.body["error"] == "user_disabled"
    with pytest.raises(ApiFailure):
        client.refresh()
    with pytest.raises(ApiFailure):
        client.login()


def test_protocol_header_mismatch_is_a_clear_400(server):
    response = httpx.post(f"{server.url}/api/v1/auth/login", headers={p.PROTOCOL_HEADER: "2"},
                          json={"username": "alice", "password": "x", "device_id": "dev-12345678"})
    assert response.status_code == 400
    assert response.json()["error"] == "protocol_mismatch"
    assert "this server speaks protocol 1" in response.json()["detail"]
    missing = httpx.get(f"{server.url}/api/v1/sync/pull")
    assert missing.status_code == 400 and "sent no X-CRM-Sync-Protocol header" in missing.json()["detail"]


def test_no_token_or_a_forged_one_is_401(server):
    headers = p.PROTOCOL_HEADERS
    assert httpx.get(f"{server.url}/api/v1/sync/pull", headers=headers).status_code == 401
    forged = {**headers, "Authorization": "Bearer v1.eyJzaWQiOiJ4In0.AAAA"}
    response = httpx.get(f"{server.url}/api/v1/sync/pull", headers=forged)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_the_server_serves_its_openapi(server):
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/sync/push",
            "/api/v1/sync/pull", "/api/v1/sync/events", "/api/v1/plugins"} <= set(schema["paths"])
