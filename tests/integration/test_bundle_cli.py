"""``crm-desktop keys generate`` and ``plugin pack | sign | install``, as an admin and a rep would run them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crm_desktop.cli import main

PLUGIN_MAIN = (
    "from crm_desktop.plugin_api import hookimpl\n\n\n"
    "@hookimpl\n"
    "def crm_activate(ctx):\n"
    "    ctx.log.info('hello from the bundle')\n"
)


def make_plugin(folder: Path, version: str = "1.0.0", name: str = "hello-bundle") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(json.dumps(
        {"name": name, "version": version, "main": "hello.py", "permissions": ["contacts:read"]}))
    (folder / "hello.py").write_text(PLUGIN_MAIN)
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def admin(tmp_path, capsys):
    """An admin key pair made with the command line; returns (prefix, public key line)."""
    prefix = tmp_path / "keys" / "admin"
    prefix.parent.mkdir()
    code, out, _ = run(capsys, "keys", "generate", "--out", prefix)
    assert code == 0
    return prefix, out.strip().splitlines()[-1]


def write_policy(path: Path, **doc) -> None:
    path.write_text(json.dumps(doc))


def test_keys_generate_prints_the_line_for_the_policy(tmp_path, capsys, admin):
    prefix, line = admin
    assert Path(f"{prefix}.pub").read_text().strip() == line
    assert line.startswith("ed25519:")
    assert stat.S_IMODE(Path(f"{prefix}.key").stat().st_mode) == 0o600

    code, out, err = run(capsys, "keys", "generate", "--out", prefix)

    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {prefix}.key exists already; choose another --out prefix "
                                        "(keys are never overwritten)"]
    assert Path(f"{prefix}.pub").read_text().strip() == line


def test_pack_sign_and_install_under_a_policy_that_requires_signatures(tmp_path, capsys, home, admin):
    prefix, public = admin
    write_policy(home.policy_path, trustedKeys=[public], requireSignature=True)
    bundle = tmp_path / "hello.crmplugin"

    assert run(capsys, "plugin", "pack", make_plugin(tmp_path / "src"), "-o", bundle)[0] == 0
    code, out, _ = run(capsys, "plugin", "sign", bundle, "--key", f"{prefix}.key")
    assert code == 0 and f"{bundle}.sig" in out
    code, out, err = run(capsys, "--home", home.root, "plugin", "install", bundle, "--yes")

    assert code == 0, err
    assert "publisher:   key " in out and "(trusted)" in out
    assert "permissions: contacts:read" in out
    assert out.strip().splitlines()[-1] == f"installed hello-bundle 1.0.0 in {home.plugins_dir / 'hello-bundle'}"
    assert (home.plugins_dir / "hello-bundle" / "hello.py").read_text() == PLUGIN_MAIN
    assert sorted(p.name for p in home.plugins_dir.iterdir()) == ["hello-bundle"]


def test_an_unsigned_bundle_is_refused_under_that_policy(tmp_path, capsys, home, admin):
    write_policy(home.policy_path, trustedKeys=[admin[1]], requireSignature=True)
    bundle = tmp_path / "hello.crmplugin"
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "src"), "-o", bundle)

    code, out, err = run(capsys, "--home", home.root, "plugin", "install", bundle, "--yes")

    assert code == 2
    assert err.strip().splitlines() == [
        "error: bundle hello.crmplugin: unsigned (no hello.crmplugin.sig), and the policy requires a signature"]
    assert list(home.plugins_dir.iterdir()) == []


def test_the_user_policy_cannot_unblock_what_the_system_policy_blocks(tmp_path, capsys, home, monkeypatch):
    system = tmp_path / "system-policy.json"
    write_policy(system, blockedPlugins=["hello-bundle"])
    monkeypatch.setenv("CRM_DESKTOP_POLICY", str(system))
    write_policy(home.policy_path, blockedPlugins=[], allowedPlugins=["hello-bundle"])
    bundle = tmp_path / "hello.crmplugin"
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "src"), "-o", bundle)

    code, _, err = run(capsys, "--home", home.root, "plugin", "install", bundle, "--yes")

    assert code == 2
    assert f"plugin 'hello-bundle' is blocked by the policy ({system}, {home.policy_path})" in err
    assert list(home.plugins_dir.iterdir()) == []


def test_without_yes_and_without_a_terminal_nothing_is_installed(tmp_path, capsys, home):
    bundle = tmp_path / "hello.crmplugin"
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "src"), "-o", bundle)

    code, out, err = run(capsys, "--home", home.root, "plugin", "install", bundle)

    assert code == 2
    assert "plugin:      hello-bundle 1.0.0" in out  # the plan was shown
    assert "add --yes" in err
    assert list(home.plugins_dir.iterdir()) == []


def test_update_then_downgrade(tmp_path, capsys, home):
    v1, v2 = tmp_path / "v1.crmplugin", tmp_path / "v2.crmplugin"
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "v1"), "-o", v1)
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "v2", version="1.1.0"), "-o", v2)
    assert run(capsys, "--home", home.root, "plugin", "install", v1, "--yes")[0] == 0

    code, out, err = run(capsys, "--home", home.root, "plugin", "install", v2, "--yes")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("updated from 1.0.0 to hello-bundle 1.1.0")

    code, _, err = run(capsys, "--home", home.root, "plugin", "install", v1, "--yes")
    assert code == 2
    assert "hello-bundle 1.0.0 is older than the installed 1.1.0 (downgrades are not allowed" in err
    assert json.loads((home.plugins_dir / "hello-bundle" / "plugin.json").read_text())["version"] == "1.1.0"


def test_pack_refuses_to_overwrite_and_sign_names_a_bad_key(tmp_path, capsys):
    bundle = tmp_path / "hello.crmplugin"
    src = make_plugin(tmp_path / "src")
    run(capsys, "plugin", "pack", src, "-o", bundle)
    code, _, err = run(capsys, "plugin", "pack", src, "-o", bundle)
    assert code == 2 and "exists already; choose another name or pass --force" in err

    (tmp_path / "bad.key").write_text("not a key")
    code, _, err = run(capsys, "plugin", "sign", bundle, "--key", tmp_path / "bad.key")
    assert code == 2 and "bad.key: not an unencrypted PEM private key" in err
    assert not Path(f"{bundle}.sig").exists()


def test_the_real_command_line_installs_a_signed_bundle_and_refuses_a_tampered_one(tmp_path, capsys, home, admin):
    prefix, public = admin
    write_policy(home.policy_path, trustedKeys=[public], requireSignature=True)
    bundle = tmp_path / "hello.crmplugin"
    run(capsys, "plugin", "pack", make_plugin(tmp_path / "src"), "-o", bundle)
    run(capsys, "plugin", "sign", bundle, "--key", f"{prefix}.key")
    env = {**os.environ, "CRM_DESKTOP_HOME": str(home.root)}
    env.pop("CRM_DESKTOP_POLICY", None)

    def crm(*args):
        return subprocess.run([sys.executable, "-m", "crm_desktop", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=120)

    tampered = tmp_path / "tampered.crmplugin"
    tampered.write_bytes(bundle.read_bytes() + b"\0")
    Path(f"{tampered}.sig").write_text(Path(f"{bundle}.sig").read_text())
    refused = crm("plugin", "install", tampered, "--yes")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "the bundle was changed after signing" in refused.stderr
    assert list(home.plugins_dir.iterdir()) == []

    done = crm("plugin", "install", bundle, "--yes")
    assert done.returncode == 0, done.stderr
    assert "installed hello-bundle 1.0.0" in done.stdout
    assert (home.plugins_dir / "hello-bundle" / "CRMPLUGIN-FILES.json").exists()
