"""The admin's trust policy: parsing, where it comes from, and how the user can only tighten it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_desktop.plugin_host import signing
from crm_desktop.plugin_host.policy import Policy, PolicyError, load_policy, merge, parse_policy


@pytest.fixture
def two_keys(tmp_path):
    a = signing.load_public_key(signing.generate_keypair(tmp_path / "a")[1])
    b = signing.load_public_key(signing.generate_keypair(tmp_path / "b")[1])
    return a, b


def write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_no_policy_files_gives_the_permissive_default(tmp_path):
    policy = load_policy(tmp_path / "policy.json", admin_path=tmp_path / "none.json", environ={})
    assert policy == Policy()
    assert policy.is_allowed("anything") and not policy.require_signature


def test_the_user_file_alone_is_the_policy(tmp_path, two_keys):
    user = write(tmp_path / "policy.json", {"trustedKeys": [two_keys[0]], "blockedPlugins": ["x"],
                                             "grants": {"tool": ["subprocess"]}})
    policy = load_policy(user, admin_path=tmp_path / "none.json", environ={})
    assert policy.trusted_keys == {two_keys[0]}
    assert policy.is_blocked("x")
    assert policy.grants_for("tool") == {"subprocess"}


def test_the_user_can_only_tighten_the_system_policy(tmp_path, two_keys, caplog):
    a, b = two_keys
    system = write(tmp_path / "system.json", {
        "trustedKeys": [a, b], "requireSignature": False, "allowedPlugins": ["p1", "p2"],
        "blockedPlugins": ["bad"], "grants": {"p1": ["subprocess"]}, "deniedPermissions": ["users:write"],
    })
    user = write(tmp_path / "policy.json", {
        "trustedKeys": [b],                # distrust a
        "requireSignature": True,          # tighten
        "allowedPlugins": ["p2", "p3"],    # p3 is not the user's to allow
        "blockedPlugins": ["p2"],          # block more
        "grants": {"p2": ["subprocess"]},  # ignored: grants loosen
        "deniedPermissions": ["api:access"],
    })
    policy = load_policy(user, admin_path=tmp_path / "none.json", environ={"CRM_DESKTOP_POLICY": str(system)})

    assert policy.trusted_keys == {b}
    assert policy.require_signature is True
    assert policy.allowed_plugins == {"p2"}
    assert policy.blocked_plugins == {"bad", "p2"}
    assert [name for name in ("p1", "p2", "p3") if policy.is_allowed(name)] == []
    assert policy.grants_for("p2") == frozenset() and policy.grants_for("p1") == {"subprocess"}
    assert policy.denied_permissions == {"users:write", "api:access"}
    assert policy.sources == (str(system), str(user))
    assert "grants is ignored in a user policy" in caplog.text


def test_the_user_cannot_add_a_trusted_key_or_unblock_or_drop_require_signature(two_keys):
    a, b = two_keys
    system = parse_policy({"trustedKeys": [a], "requireSignature": True, "blockedPlugins": ["bad"]}, "system")
    user_doc = {"trustedKeys": [a, b], "requireSignature": False, "blockedPlugins": []}
    policy = merge(system, parse_policy(user_doc, "user"), user_doc)
    assert policy.trusted_keys == {a}
    assert policy.require_signature is True
    assert policy.is_blocked("bad")


def test_a_user_policy_without_trusted_keys_keeps_the_systems(two_keys):
    a, _ = two_keys
    system = parse_policy({"trustedKeys": [a]}, "system")
    policy = merge(system, parse_policy({"blockedPlugins": ["x"]}, "user"), {"blockedPlugins": ["x"]})
    assert policy.trusted_keys == {a}


def test_the_admin_file_wins_over_the_environment_variable(tmp_path):
    admin = write(tmp_path / "admin.json", {"blockedPlugins": ["from-admin"]})
    mine = write(tmp_path / "mine.json", {})
    policy = load_policy(None, admin_path=admin, environ={"CRM_DESKTOP_POLICY": str(mine)})
    assert policy.is_blocked("from-admin")


def test_a_named_system_policy_that_is_missing_fails_closed(tmp_path):
    with pytest.raises(PolicyError, match="CRM_DESKTOP_POLICY names .*gone.json, which does not exist"):
        load_policy(None, admin_path=tmp_path / "none.json", environ={"CRM_DESKTOP_POLICY": str(tmp_path / "gone.json")})


@pytest.mark.parametrize("doc,message", [
    ({"trustedkeys": []}, "unknown key 'trustedkeys'"),
    ({"requireSignature": "yes"}, "requireSignature must be true or false, got 'yes'"),
    ({"blockedPlugins": "bad"}, "blockedPlugins must be a list of names"),
    ({"trustedKeys": ["ssh-rsa AAAA"]}, r"trustedKeys\[0\]: .* must start with 'ed25519:'"),
    ({"grants": {"p": ["root"]}}, "grants.p: 'root' is not a grant"),
    ([], "a policy is a JSON object"),
])
def test_malformed_policies_name_the_file_and_key(tmp_path, doc, message):
    path = write(tmp_path / "policy.json", doc)
    with pytest.raises(PolicyError, match=message) as excinfo:
        load_policy(path, admin_path=tmp_path / "none.json", environ={})
    assert str(path) in str(excinfo.value)


def test_invalid_json_is_an_error(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="policy.json: invalid JSON"):
        load_policy(path, admin_path=tmp_path / "none.json", environ={})


def test_refusal_messages_name_the_plugin_and_the_policy_file():
    policy = parse_policy({"blockedPlugins": ["old"], "allowedPlugins": ["new"]}, "/etc/crm-desktop/policy.json")
    assert policy.refusal("old") == "plugin 'old' is blocked by the policy (/etc/crm-desktop/policy.json)"
    assert "not in the policy's allowedPlugins" in policy.refusal("other")
    assert policy.refusal("new") is None


# --------------------------------------------------------------------------- allowUnsignedFrom (issue 8)


def test_allow_unsigned_from_expands_the_home_and_covers_subfolders(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    policy = parse_policy({"requireSignature": True, "allowUnsignedFrom": ["~/src/crm-plugins"]}, "system")
    assert policy.allow_unsigned_from == ((tmp_path / "src" / "crm-plugins").resolve(),)
    assert policy.unsigned_exemption(tmp_path / "src" / "crm-plugins" / "mine") == (tmp_path / "src" / "crm-plugins").resolve()
    assert policy.unsigned_exemption(tmp_path / "src" / "crm-plugins-evil" / "x") is None
    assert policy.unsigned_exemption(tmp_path / "src") is None
    assert policy.to_json()["allowUnsignedFrom"] == [str((tmp_path / "src" / "crm-plugins").resolve())]


@pytest.mark.parametrize("value,message", [
    ("/opt/dev", "allowUnsignedFrom must be a list of folder paths, got '/opt/dev'"),
    (["plugins/dev"], "allowUnsignedFrom: 'plugins/dev' is not an absolute folder path"),
])
def test_allow_unsigned_from_must_be_absolute_folders(tmp_path, value, message):
    path = write(tmp_path / "policy.json", {"allowUnsignedFrom": value})
    with pytest.raises(PolicyError, match=message):
        load_policy(path, admin_path=tmp_path / "none.json", environ={})


def test_a_user_cannot_add_an_unsigned_exemption_to_a_system_that_requires_signatures(tmp_path, caplog):
    dev, mine = str(tmp_path / "dev"), str(tmp_path / "mine")
    system = parse_policy({"requireSignature": True, "allowUnsignedFrom": [dev]}, "system")

    added_doc = {"allowUnsignedFrom": [dev, mine]}
    added = merge(system, parse_policy(added_doc, "user"), added_doc)
    assert added.allow_unsigned_from == (Path(dev).resolve(),)
    assert "cannot add exemptions" in caplog.text

    dropped_doc = {"allowUnsignedFrom": []}
    assert merge(system, parse_policy(dropped_doc, "user"), dropped_doc).allow_unsigned_from == ()
    assert merge(system, parse_policy({}, "user"), {}).allow_unsigned_from == (Path(dev).resolve(),)


def test_a_user_who_requires_signatures_on_their_own_may_exempt_folders(tmp_path):
    mine = str(tmp_path / "mine")
    system = parse_policy({"blockedPlugins": ["x"]}, "system")
    user_doc = {"requireSignature": True, "allowUnsignedFrom": [mine]}
    policy = merge(system, parse_policy(user_doc, "user"), user_doc)
    assert policy.require_signature and policy.allow_unsigned_from == (Path(mine).resolve(),)


def test_the_admin_guides_example_policy_is_a_valid_policy():
    import re

    guide = (Path(__file__).resolve().parents[2] / "docs" / "admin-guide.md").read_text()
    example = next(block for block in re.findall(r"```json\n(.*?)```", guide, re.S) if "requireSignature" in block)
    policy = parse_policy(json.loads(example), "admin-guide.md")
    assert policy.require_signature and policy.allow_unsigned_from == (Path("~/src/crm-plugins").expanduser().resolve(),)
