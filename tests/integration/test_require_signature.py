"""Under ``requireSignature`` nothing unsigned runs (issue 8, section 3).

Only first-party plugins, plugins installed from verified bundles and folders
the policy lists in ``allowUnsignedFrom`` load; everything else is listed as
blocked with the reason. Installing a folder follows the bundle's rules.
"""

from __future__ import annotations

import gc
import json
import sys
import textwrap
from pathlib import Path

import pytest

from crm_desktop.cli import main
from crm_desktop.plugin_api import PluginError
from crm_desktop.plugin_host import bundle, signing
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.policy import Policy

# The plugin's import leaves a trace outside the host, so "its code never ran" is checked directly.
TRACED = """
import sys
sys.__dict__.setdefault("crm_ran", []).append("{name}")
from crm_desktop.plugin_api import hookimpl

@hookimpl
def crm_activate(ctx):
    ctx.log.info("up")
"""


def write_plugin(parent: Path, name: str, version: str = "1.0.0", **manifest) -> Path:
    d = parent / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.json").write_text(json.dumps({"name": name, "version": version, "main": "plugin.py", **manifest}))
    (d / "plugin.py").write_text(textwrap.dedent(TRACED).replace("{name}", name))
    return d


@pytest.fixture(autouse=True)
def ran(monkeypatch):
    monkeypatch.setattr(sys, "crm_ran", [], raising=False)
    return sys.crm_ran


@pytest.fixture
def key(tmp_path):
    """An admin key pair: (private key, public key line, key id)."""
    key_path, pub_path = signing.generate_keypair(tmp_path / "keys-admin")
    public = signing.load_public_key(pub_path)
    return signing.load_private_key(key_path), public, signing.key_id(public)


@pytest.fixture
def make_host(core, home):
    hosts: list[PluginHost] = []

    def make(policy: Policy, **kwargs) -> PluginHost:
        kwargs.setdefault("bundled_dir", None)
        kwargs.setdefault("system_dir", None)
        host = PluginHost(core, home, policy=policy, **kwargs)
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop()
    hosts.clear()
    gc.collect()


def signed_bundle(tmp_path: Path, key, name: str, version: str = "1.0.0") -> Path:
    src = write_plugin(tmp_path / f"src-{name}-{version}", name, version)
    packed = bundle.pack_plugin(src, tmp_path / f"{name}-{version}.crmplugin")
    signing.sign_bundle(packed.path, key[0], name, version)
    return packed.path


def strict(key, **more) -> Policy:
    return Policy(trusted_keys=frozenset({key[1]}), require_signature=True, **more)


def cli(home, capsys, *argv) -> tuple[int, str, str]:
    code = main(["--home", str(home.root), *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- what loads


def test_an_unsigned_folder_in_the_plugins_folder_is_blocked_and_never_runs(make_host, home, key, ran):
    write_plugin(home.plugins_dir, "copied-in")

    host = make_host(strict(key))

    record = host.records["copied-in"]
    assert record.state.value == "blocked"
    assert "the policy requires signatures" in record.error
    assert "was not installed from a signed bundle" in record.error
    assert "allowUnsignedFrom" in record.error  # says what to do
    assert record.publisher == "unsigned"
    assert ran == [] and host.context("copied-in") is None


def test_plugin_list_shows_the_blocked_plugin_with_its_reason(home, key, capsys, ran):
    home.policy_path.write_text(json.dumps({"trustedKeys": [key[1]], "requireSignature": True}))
    write_plugin(home.plugins_dir, "scaffolded")

    code, out, _ = cli(home, capsys, "plugin", "list", "--json")
    assert code == 0
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["scaffolded"]["state"] == "blocked"
    assert "the policy requires signatures" in listed["scaffolded"]["error"]
    assert listed["scaffolded"]["publisher"] == "unsigned" and listed["scaffolded"]["keyId"] is None

    code, out, _ = cli(home, capsys, "plugin", "list")
    assert code == 0
    assert "scaffolded" in out and "blocked" in out and "the policy requires signatures" in out
    assert "publisher: unsigned" in out
    assert ran == []


def test_a_folder_listed_in_allow_unsigned_from_loads(make_host, home, key, ran):
    write_plugin(home.plugins_dir, "in-development")
    write_plugin(home.plugins_dir, "not-listed")

    host = make_host(strict(key, allow_unsigned_from=((home.plugins_dir / "in-development").resolve(),)))

    assert host.records["in-development"].state.value == "active"
    assert host.records["in-development"].publisher.startswith("unsigned (allowed by allowUnsignedFrom:")
    assert host.records["not-listed"].state.value == "blocked"
    assert ran == ["in-development"]


def test_a_verified_bundle_install_loads_and_shows_its_publisher_key(make_host, home, key, tmp_path, ran):
    bundle.install_bundle(signed_bundle(tmp_path, key, "signed-one"), home.plugins_dir, strict(key))

    host = make_host(strict(key))

    record = host.records["signed-one"]
    assert record.state.value == "active"
    assert record.key_id == key[2] and record.publisher == f"key {key[2]} (trusted)"
    assert ran == ["signed-one"]


def test_first_party_plugins_load_under_require_signature_but_can_still_be_blocked(make_host, key, tmp_path, ran):
    bundled = tmp_path / "app-plugins"
    write_plugin(bundled, "first-party")
    write_plugin(bundled, "retired")

    host = make_host(strict(key, blocked_plugins=frozenset({"retired"})), bundled_dir=bundled)

    assert host.records["first-party"].state.value == "active"
    assert host.records["first-party"].publisher == "first-party (ships with the app)"
    assert host.records["retired"].state.value == "blocked"
    assert ran == ["first-party"]


def test_a_bundle_installed_unsigned_earlier_is_blocked_once_signatures_are_required(make_host, home, key, tmp_path, ran):
    src = write_plugin(tmp_path / "src", "old-unsigned")
    bundle.install_bundle(bundle.pack_plugin(src, tmp_path / "old.crmplugin").path, home.plugins_dir)

    host = make_host(strict(key))

    assert host.records["old-unsigned"].state.value == "blocked"
    assert "was not installed from a signed bundle" in host.records["old-unsigned"].error
    assert ran == []


def test_a_key_the_policy_no_longer_trusts_blocks_what_it_signed(make_host, home, key, tmp_path, ran):
    bundle.install_bundle(signed_bundle(tmp_path, key, "revoked"), home.plugins_dir, strict(key))
    other = signing.load_public_key(signing.generate_keypair(tmp_path / "keys-new")[1])

    host = make_host(Policy(trusted_keys=frozenset({other}), require_signature=True))

    record = host.records["revoked"]
    assert record.state.value == "blocked"
    assert f"signed by key {key[2]}, which the policy does not trust" in record.error
    assert record.publisher == f"key {key[2]} (not trusted by the policy)"
    assert ran == []


def test_a_forged_install_record_does_not_make_a_folder_signed(make_host, home, key, tmp_path, ran):
    # a signed install of "genuine"; then a scaffolded folder dressed up with a copy of its record
    installed = bundle.install_bundle(signed_bundle(tmp_path, key, "genuine"), home.plugins_dir, strict(key)).path
    fake = write_plugin(home.plugins_dir, "impostor")
    record = json.loads((installed / bundle.INSTALL_RECORD_NAME).read_text())
    (fake / bundle.INSTALL_RECORD_NAME).write_text(json.dumps({**record, "name": "impostor"}))
    files = [{"path": p, "size": (fake / p).stat().st_size, "sha256": signing.file_sha256(fake / p)}
             for p in ("plugin.json", "plugin.py")]
    (fake / bundle.FILE_LIST_NAME).write_text(json.dumps(
        {"format": bundle.FILE_LIST_FORMAT, "plugin": "impostor", "version": "1.0.0", "files": files}))

    host = make_host(strict(key))

    assert host.records["genuine"].state.value == "active"
    assert host.records["impostor"].state.value == "blocked"
    assert "does not verify" in host.records["impostor"].error
    assert ran == ["genuine"]


def test_a_changed_file_of_a_signed_install_still_blocks_it(make_host, home, key, tmp_path, ran):
    installed = bundle.install_bundle(signed_bundle(tmp_path, key, "edited"), home.plugins_dir, strict(key)).path
    (installed / "plugin.py").write_text(TRACED.replace("{name}", "edited") + "\n# a local fix\n")

    host = make_host(strict(key))

    assert host.records["edited"].state.value == "blocked"
    assert "plugin.py was changed after install" in host.records["edited"].error
    assert ran == []


def test_plugin_check_of_an_unsigned_folder_does_not_run_it(home, key, tmp_path, capsys, ran):
    home.policy_path.write_text(json.dumps({"trustedKeys": [key[1]], "requireSignature": True}))
    folder = write_plugin(tmp_path / "work", "checked")

    code, out, _ = cli(home, capsys, "plugin", "check", folder)

    assert code == 1 and "the policy requires signatures" in out
    assert ran == []


# ----------------------------------------------------------------------------- install from folder


def test_install_from_folder_is_refused_under_require_signature(make_host, home, key, tmp_path, ran):
    host = make_host(strict(key))
    src = write_plugin(tmp_path / "downloads", "from-folder")

    with pytest.raises(PluginError, match=r"installing from-folder from .* refused: the policy requires "
                                          r"signatures .* install its signed \.crmplugin bundle instead"):
        host.install_folder(src)

    assert "from-folder" not in host.records and not (home.plugins_dir / "from-folder").exists()
    assert ran == []


def test_install_from_folder_over_a_signed_install_is_refused(make_host, home, key, tmp_path, ran):
    bundle.install_bundle(signed_bundle(tmp_path, key, "signed-app", "1.0.0"), home.plugins_dir, strict(key))
    # even where the admin allows unsigned development folders, a signed install is not replaced by unsigned code
    host = make_host(strict(key, allow_unsigned_from=(home.plugins_dir.resolve(),)))
    assert host.records["signed-app"].state.value == "active"
    src = write_plugin(tmp_path / "downloads", "signed-app", "2.0.0")
    asked = []

    with pytest.raises(PluginError, match=rf"would replace signed-app 1.0.0, installed from a bundle signed by key "
                                          rf"{key[2]}, with unsigned code"):
        host.install_folder(src, approve=lambda plan: asked.append(plan) or True)

    assert asked == []  # refused before any question
    assert host.records["signed-app"].state.value == "active" and host.records["signed-app"].version == "1.0.0"
    assert json.loads((home.plugins_dir / "signed-app" / "plugin.json").read_text())["version"] == "1.0.0"


def test_a_lower_version_folder_install_is_refused(make_host, home, tmp_path):
    host = make_host(Policy())
    assert host.install_folder(write_plugin(tmp_path / "v2", "versioned", "2.0.0")).state.value == "active"

    with pytest.raises(PluginError, match=r"versioned 1.0.0 .* refused: it is older than the installed 2.0.0 "
                                          r"\(downgrades are not allowed; uninstall first\)"):
        host.install_folder(write_plugin(tmp_path / "v1", "versioned", "1.0.0"))

    assert host.records["versioned"].version == "2.0.0" and host.records["versioned"].state.value == "active"
    assert json.loads((home.plugins_dir / "versioned" / "plugin.json").read_text())["version"] == "2.0.0"


def test_a_blocked_name_is_refused_from_a_folder(make_host, home, tmp_path):
    host = make_host(Policy(blocked_plugins=frozenset({"old-reporting"}), sources=("/etc/crm-desktop/policy.json",)))

    with pytest.raises(PluginError, match=r"refused: plugin 'old-reporting' is blocked by the policy "
                                          r"\(/etc/crm-desktop/policy.json\)"):
        host.install_folder(write_plugin(tmp_path / "downloads", "old-reporting"))

    assert not (home.plugins_dir / "old-reporting").exists()


def test_install_from_folder_asks_first_and_a_no_changes_nothing(make_host, home, key, tmp_path, ran):
    host = make_host(strict(key, allow_unsigned_from=(home.plugins_dir.resolve(),)))
    src = write_plugin(tmp_path / "downloads", "asked", permissions=["contacts:read"])
    plans = []

    with pytest.raises(PluginError, match="install of asked from .* cancelled; nothing changed"):
        host.install_folder(src, approve=lambda plan: plans.append(plan) and False)

    [plan] = plans
    assert (plan.name, plan.version, plan.previous_version) == ("asked", "1.0.0", None)
    assert plan.permissions == ["contacts:read"] and plan.target == (home.plugins_dir / "asked").resolve()
    assert plan.publisher.startswith("unsigned (allowed by allowUnsignedFrom:")
    assert not (home.plugins_dir / "asked").exists() and ran == []

    record = host.install_folder(src, approve=lambda plan: True)
    assert record.state.value == "active" and ran == ["asked"]


def test_the_cli_installs_a_folder_with_the_same_rules(home, key, tmp_path, capsys, ran):
    src = write_plugin(tmp_path / "downloads", "cli-folder")
    home.policy_path.write_text(json.dumps({"trustedKeys": [key[1]], "requireSignature": True}))

    code, out, err = cli(home, capsys, "plugin", "install", src, "--yes")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "the policy requires signatures" in err
    assert not (home.plugins_dir / "cli-folder").exists()

    home.policy_path.unlink()
    code, out, err = cli(home, capsys, "plugin", "install", src)  # no terminal, no --yes: shown, not installed
    assert code == 2 and "plugin:      cli-folder 1.0.0" in out and "publisher:   unsigned" in out
    assert "add --yes" in err and not (home.plugins_dir / "cli-folder").exists()

    code, out, err = cli(home, capsys, "plugin", "install", src, "--yes")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"installed cli-folder 1.0.0 in {(home.plugins_dir / 'cli-folder').resolve()}"
