"""``crm-server`` as an admin runs it: users, teams, plugin publishing; one clear line on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sync_harness import SyncClient, ThreadServer, run_cli

from crm_desktop.plugin_host.bundle import pack_plugin
from crm_desktop.plugin_host.signing import generate_keypair, load_private_key, sign_bundle
from crm_desktop.sync import protocol as p


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _fails_with(result, line: str) -> None:
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"crm-server: error: {line}"], result.stderr
    assert "Traceback" not in result.stderr


def test_users_and_teams(sqlite_url):
    assert run_cli(sqlite_url, "team", "add", "east").returncode == 0
    assert run_cli(sqlite_url, "team", "add", "west").returncode == 0
    added = run_cli(sqlite_url, "user", "add", "ana", "--role", "manager", "--team", "east,west",
                    "--password-stdin", stdin="correct horse\n")
    assert added.returncode == 0 and added.stdout.strip() == "added user ana (manager)"
    assert run_cli(sqlite_url, "user", "set", "ana", "--role", "rep", "--team", "west").returncode == 0
    assert run_cli(sqlite_url, "user", "set", "ana", "--disable").returncode == 0
    listed = run_cli(sqlite_url, "user", "list").stdout.split()
    assert listed == ["ana", "rep", "west", "disabled"]


def test_bad_input_is_one_clear_line_and_changes_nothing(sqlite_url):
    _fails_with(run_cli(sqlite_url, "user", "add", "ana", "--role", "rep", "--team", "nowhere", "--password-stdin",
                        stdin="long enough\n"),
                "no team 'nowhere': add it first with 'crm-server team add nowhere'")
    _fails_with(run_cli(sqlite_url, "user", "add", "ana", "--role", "rep", "--password-stdin", stdin="short\n"),
                "the password must be at least 8 characters")
    _fails_with(run_cli(sqlite_url, "user", "add", "ana", "--role", "rep"),
                "give the password on standard input with --password-stdin (it is never an argument)")
    _fails_with(run_cli(sqlite_url, "user", "set", "ghost", "--disable"), "no user 'ghost': see 'crm-server user list'")
    _fails_with(run_cli(sqlite_url, "plugin", "withdraw", "nothing"), "no published plugin 'nothing'")
    assert run_cli(sqlite_url, "user", "list").stdout.startswith("no users")
    bad_db = run_cli("mysql://x/y", "user", "list")
    _fails_with(bad_db, "--db 'mysql://x/y': only PostgreSQL and SQLite are supported")
    usage = run_cli(sqlite_url, "user", "add", "ana", "--role", "king")
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1


def _bundle(tmp_path: Path, version: str, key: Path) -> Path:
    src = tmp_path / f"src-{version}"
    src.mkdir()
    (src / "plugin.json").write_text(json.dumps({"name": "hello-sync", "version": version, "main": "hello.py",
                                                 "permissions": ["contacts:read"]}))
    (src / "hello.py").write_text("x = 1\n")
    out = tmp_path / f"hello-sync-{version}.crmplugin"
    pack_plugin(src, out)
    sign_bundle(out, load_private_key(key), "hello-sync", version)
    return out


def test_publish_verifies_the_signature_and_clients_list_the_plugin(tmp_path, sqlite_url):
    key, pub = generate_keypair(tmp_path / "admin")
    other_key, _ = generate_keypair(tmp_path / "stranger")
    bundle = _bundle(tmp_path, "1.0.0", key)
    _fails_with(run_cli(sqlite_url, "plugin", "publish", str(bundle)),
                "no trusted keys on this server: add the signing key with 'crm-server plugin trust KEY.pub'")
    assert run_cli(sqlite_url, "plugin", "trust", str(pub)).returncode == 0

    untrusted = _bundle(tmp_path, "1.1.0", other_key)
    refused = run_cli(sqlite_url, "plugin", "publish", str(untrusted))
    assert refused.returncode == 1 and "not one of the policy's trusted keys" in refused.stderr
    published = run_cli(sqlite_url, "plugin", "publish", str(bundle))
    assert published.returncode == 0 and published.stdout.strip() == "published hello-sync 1.0.0"
    _fails_with(run_cli(sqlite_url, "plugin", "publish", str(bundle)),
                "hello-sync 1.0.0 is published; publish a higher version than 1.0.0")

    run_cli(sqlite_url, "team", "add", "east")
    run_cli(sqlite_url, "user", "add", "ana", "--role", "rep", "--team", "east", "--password-stdin",
            stdin="password-ana\n")
    server = ThreadServer(sqlite_url).start()
    client = SyncClient(server.url, "ana")
    try:
        client.login()
        listed = p.PluginList.model_validate(client.call("GET", "/plugins"))
        (plugin,) = listed.plugins
        assert (plugin.name, plugin.version) == ("hello-sync", "1.0.0") and plugin.signature["plugin"] == "hello-sync"
        download = httpx.get(server.url + plugin.url, headers={**p.PROTOCOL_HEADERS,
                                                               "Authorization": f"Bearer {client.access}"})
        assert download.content == bundle.read_bytes()
        assert run_cli(sqlite_url, "plugin", "withdraw", "hello-sync").returncode == 0
        assert p.PluginList.model_validate(client.call("GET", "/plugins")).plugins == []
    finally:
        client.close()
        server.stop()
