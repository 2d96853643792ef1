"""Plugin distribution, client side, against a real ``crm-server run`` on 127.0.0.1: the admin
publishes signed bundles with ``crm-server plugin publish``; ``crm-desktop sync`` installs,
updates and removes them through the verified bundle path, refuses untrusted or tampered ones,
and reports each outcome to the server."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from crm_desktop.cli import main
from crm_desktop.core import Core
from crm_desktop.paths import Home
from crm_desktop.plugin_host.lifecycle import PluginState
from crm_desktop.plugin_host.bundle import pack_plugin
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.signing import generate_keypair, load_private_key, sign_bundle
from desktop_harness import PASSWORD, start_server

NAME = "hello-dist"


@pytest.fixture
def server(tmp_path):
    s = start_server(tmp_path / "server", users=(("alice", "rep", "north"),))
    yield s
    s.stop()


def _bundle(tmp_path: Path, version: str, key: Path, name: str = NAME) -> Path:
    src = tmp_path / f"src-{name}-{version}"
    src.mkdir()
    (src / "plugin.json").write_text(json.dumps({"name": name, "version": version, "main": "hello.py",
                                                 "permissions": ["contacts:read"]}))
    (src / "hello.py").write_text(f"VERSION = {version!r}\n")
    out = tmp_path / f"{name}-{version}.crmplugin"
    pack_plugin(src, out)
    sign_bundle(out, load_private_key(key), name, version)
    return out


def _home(tmp_path: Path, server, monkeypatch, trusted: list[Path]) -> Path:
    home = tmp_path / "home"
    Home(home).ensure()
    keys = [p.read_text().strip() for p in trusted]
    (home / "policy.json").write_text(json.dumps({"trustedKeys": keys, "requireSignature": True}))
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["--home", str(home), "login", "--server", server.url, "--user", "alice", "--password-stdin"]) == 0
    return home


def _sync(home: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["--home", str(home), "sync", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["plugins"]


def _host_state(home: Path, name: str) -> tuple[str, str | None]:
    with Core.open(Home(home)) as core:
        host = PluginHost(core, Home(home), bundled_dir=None, system_dir=None, tripwire=False)
        try:
            host.start()
            record = host.records.get(name)
            return (record.state.value, record.version) if record else ("absent", None)
        finally:
            host.stop()


def _reports(server) -> dict[str, tuple]:
    conn = sqlite3.connect(server.root / "server.sqlite3")
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT name, version, state, reason FROM device_plugins")}
    finally:
        conn.close()


def test_publish_update_withdraw(tmp_path, server, memory_keyring, monkeypatch, capsys):
    key, pub = generate_keypair(tmp_path / "admin")
    server.admin("plugin", "trust", str(pub))
    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.0.0", key)))
    home = _home(tmp_path, server, monkeypatch, [pub])

    plugins = _sync(home, capsys)
    assert plugins["installed"] == [{"name": NAME, "version": "1.0.0"}], plugins
    assert plugins["refused"] == [] and plugins["errors"] == []
    assert _host_state(home, NAME) == (PluginState.ACTIVE.value, "1.0.0")
    assert _reports(server)[NAME] == ("1.0.0", "installed", None)
    record = json.loads((home / "plugins" / NAME / "CRMPLUGIN-INSTALL.json").read_text())
    assert record["origin"]["server"] == server.url

    assert _sync(home, capsys)["unchanged"] == [{"name": NAME, "version": "1.0.0"}]

    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.1.0", key)))
    plugins = _sync(home, capsys)
    assert plugins["updated"] == [{"name": NAME, "version": "1.1.0", "previous": "1.0.0"}], plugins
    assert _host_state(home, NAME) == (PluginState.ACTIVE.value, "1.1.0")
    assert "1.1.0" in (home / "plugins" / NAME / "hello.py").read_text()
    assert _reports(server)[NAME][:2] == ("1.1.0", "installed")

    data = home / "plugin-data" / NAME
    data.mkdir(parents=True, exist_ok=True)
    (data / "notes.txt").write_text("keep me")
    server.admin("plugin", "withdraw", NAME)
    plugins = _sync(home, capsys)
    assert plugins["removed"] == [{"name": NAME, "version": "1.1.0"}], plugins
    assert not (home / "plugins" / NAME).exists()
    assert (data / "notes.txt").read_text() == "keep me"
    assert _host_state(home, NAME) == ("absent", None)


def test_a_locally_installed_plugin_is_never_removed_by_sync(tmp_path, server, memory_keyring, monkeypatch, capsys):
    key, pub = generate_keypair(tmp_path / "admin")
    home = _home(tmp_path, server, monkeypatch, [pub])
    local = _bundle(tmp_path, "2.0.0", key, name="local-only")
    assert main(["--home", str(home), "plugin", "install", str(local), "--yes"]) == 0
    plugins = _sync(home, capsys)
    assert plugins["removed"] == [] and (home / "plugins" / "local-only").is_dir()


def test_untrusted_key_is_refused_and_reported(tmp_path, server, memory_keyring, monkeypatch, capsys):
    key, pub = generate_keypair(tmp_path / "admin")
    _other, other_pub = generate_keypair(tmp_path / "laptop-key")
    server.admin("plugin", "trust", str(pub))
    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.0.0", key)))
    home = _home(tmp_path, server, monkeypatch, [other_pub])  # the laptop trusts another key only

    plugins = _sync(home, capsys)
    assert plugins["installed"] == [] and not (home / "plugins" / NAME).exists()
    [refused] = plugins["refused"]
    assert refused["name"] == NAME, refused
    assert ("not one of the policy's trusted keys" in refused["reason"]
            or "does not trust" in refused["reason"]), refused
    version, state, reason = _reports(server)[NAME]
    assert (version, state) == ("1.0.0", "refused") and reason == refused["reason"]


def test_tampered_bundle_is_refused(tmp_path, server, memory_keyring, monkeypatch, capsys):
    key, pub = generate_keypair(tmp_path / "admin")
    server.admin("plugin", "trust", str(pub))
    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.0.0", key)))
    home = _home(tmp_path, server, monkeypatch, [pub])
    # the bundle is altered on the server (and its listed sha256 with it): only the signature can tell
    conn = sqlite3.connect(server.root / "server.sqlite3")
    with conn:
        (blob,) = conn.execute("SELECT bundle FROM plugins WHERE name = ?", (NAME,)).fetchone()
        evil = bytes(blob) + b"tampered"
        conn.execute("UPDATE plugins SET bundle = ?, sha256 = ? WHERE name = ?",
                     (evil, hashlib.sha256(evil).hexdigest(), NAME))
    conn.close()

    plugins = _sync(home, capsys)
    [refused] = plugins["refused"]
    assert plugins["installed"] == [] and not (home / "plugins" / NAME).exists()
    assert "signature" in refused["reason"] or "sha256" in refused["reason"], refused
    assert _reports(server)[NAME][1] == "refused"


def test_organisation_policy_blocks_and_only_tightens(tmp_path, server, memory_keyring, monkeypatch, capsys):
    key, pub = generate_keypair(tmp_path / "admin")
    server.admin("plugin", "trust", str(pub))
    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.0.0", key)))
    server.admin("plugin", "policy", "--block", NAME)
    home = _home(tmp_path, server, monkeypatch, [pub])
    plugins = _sync(home, capsys)
    [refused] = plugins["refused"]
    assert "blocked" in refused["reason"] and "organisation" in refused["reason"], refused
    assert json.loads((home / "org-policy.json").read_text())["blocked"] == [NAME]
    assert _reports(server)[NAME][1] == "refused"


def test_a_running_host_picks_up_installs_and_removals_live(tmp_path, server, memory_keyring, monkeypatch, capsys):
    from crm_desktop.plugin_host.distribution import apply_to_host

    key, pub = generate_keypair(tmp_path / "admin")
    server.admin("plugin", "trust", str(pub))
    server.admin("plugin", "publish", str(_bundle(tmp_path, "1.0.0", key)))
    home = _home(tmp_path, server, monkeypatch, [pub])
    with Core.open(Home(home)) as core:
        host = PluginHost(core, Home(home), bundled_dir=None, system_dir=None, tripwire=False)
        host.start()
        try:
            assert NAME not in host.records
            assert apply_to_host(host, _sync(home, capsys)) == []
            assert host.records[NAME].state is PluginState.ACTIVE
            server.admin("plugin", "withdraw", NAME)
            assert apply_to_host(host, _sync(home, capsys)) == []
            assert NAME not in host.records
        finally:
            host.stop()
