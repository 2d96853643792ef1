"""Ed25519 keys and detached bundle signatures."""

from __future__ import annotations

import json
import stat

import pytest

from crm_desktop.plugin_host import signing
from crm_desktop.plugin_host.signing import SignatureError


@pytest.fixture
def keypair(tmp_path):
    key_path, pub_path = signing.generate_keypair(tmp_path / "admin")
    return signing.load_private_key(key_path), signing.load_public_key(pub_path)


@pytest.fixture
def bundle_file(tmp_path):
    path = tmp_path / "sample.crmplugin"
    path.write_bytes(b"PK pretend zip bytes " * 100)
    return path


def test_generate_writes_a_private_key_only_the_owner_can_read_and_a_one_line_public_key(tmp_path):
    key_path, pub_path = signing.generate_keypair(tmp_path / "admin")
    assert key_path.name == "admin.key" and pub_path.name == "admin.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    lines = pub_path.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ed25519:")
    assert signing.normalize_public_key(lines[0]) == lines[0]


def test_generate_never_overwrites_a_key(tmp_path):
    key_path, _ = signing.generate_keypair(tmp_path / "admin")
    before = key_path.read_bytes()
    with pytest.raises(SignatureError, match="admin.key exists already"):
        signing.generate_keypair(tmp_path / "admin")
    assert key_path.read_bytes() == before


def test_sign_then_verify_with_a_trusted_key(keypair, bundle_file):
    private, public = keypair
    sig_path = signing.sign_bundle(bundle_file, private, "sample", "1.2.0")
    assert sig_path.name == "sample.crmplugin.sig"
    doc = json.loads(sig_path.read_text())
    assert doc["plugin"] == "sample" and doc["version"] == "1.2.0" and doc["publicKey"] == public
    assert doc["sha256"] == signing.file_sha256(bundle_file)

    info = signing.verify_bundle_signature(bundle_file, trusted_keys=[public])

    assert info.trusted and info.plugin == "sample" and info.version == "1.2.0"
    assert info.key_id == signing.key_id(public)


def test_a_changed_bundle_does_not_verify(keypair, bundle_file):
    private, public = keypair
    signing.sign_bundle(bundle_file, private, "sample", "1.0.0")
    bundle_file.write_bytes(bundle_file.read_bytes() + b"!")
    with pytest.raises(SignatureError, match="the bundle was changed after signing"):
        signing.verify_bundle_signature(bundle_file, trusted_keys=[public])


@pytest.mark.parametrize("field,value", [("plugin", "other"), ("version", "9.0.0")])
def test_a_signature_cannot_be_moved_to_another_name_or_version(keypair, bundle_file, field, value):
    private, public = keypair
    sig_path = signing.sign_bundle(bundle_file, private, "sample", "1.0.0")
    doc = json.loads(sig_path.read_text())
    doc[field] = value
    sig_path.write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="does not verify"):
        signing.verify_bundle_signature(bundle_file, trusted_keys=[public])


def test_swapping_in_another_public_key_does_not_verify(tmp_path, keypair, bundle_file):
    private, public = keypair
    _, other_pub = signing.generate_keypair(tmp_path / "other")
    sig_path = signing.sign_bundle(bundle_file, private, "sample", "1.0.0")
    doc = json.loads(sig_path.read_text())
    doc["publicKey"] = signing.load_public_key(other_pub)
    sig_path.write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="does not verify"):
        signing.verify_bundle_signature(bundle_file, trusted_keys=[doc["publicKey"]])


def test_an_untrusted_key_is_refused_or_reported(tmp_path, keypair, bundle_file):
    private, _ = keypair
    _, other_pub = signing.generate_keypair(tmp_path / "other")
    signing.sign_bundle(bundle_file, private, "sample", "1.0.0")
    with pytest.raises(SignatureError, match="not one of the policy's trusted keys"):
        signing.verify_bundle_signature(bundle_file, trusted_keys=[signing.load_public_key(other_pub)])
    info = signing.verify_bundle_signature(bundle_file, trusted_keys=[], require_trusted=False)
    assert info.trusted is False


def test_the_signed_message_is_domain_separated():
    message = signing.signed_message("sample", "1.0.0", "ab" * 32)
    assert message.startswith(b"crm-desktop bundle signature v1\n")
    with pytest.raises(SignatureError, match="one-line"):
        signing.signed_message("sample\n1.0.0", "1.0.0", "ab" * 32)


@pytest.mark.parametrize("content,message", [
    (b"not json", "invalid JSON"),
    (b'{"format": "gpg"}', "format must be"),
    (b'{"format": "crm-desktop-signature/1", "algorithm": "rsa"}', "only 'ed25519'"),
    (b'{"format": "crm-desktop-signature/1", "algorithm": "ed25519", "publicKey": "ed25519:AAAA"}',
     "field 'plugin' is missing"),
])
def test_malformed_signature_files_are_named(tmp_path, bundle_file, content, message):
    sig = tmp_path / "sample.crmplugin.sig"
    sig.write_bytes(content)
    with pytest.raises(SignatureError, match=message) as excinfo:
        signing.verify_bundle_signature(bundle_file)
    assert "sample.crmplugin.sig" in str(excinfo.value)


def test_loading_a_public_key_file_as_private_key_is_a_clear_error(tmp_path):
    _, pub = signing.generate_keypair(tmp_path / "admin")
    with pytest.raises(SignatureError, match="admin.pub: not an unencrypted PEM private key"):
        signing.load_private_key(pub)
    with pytest.raises(SignatureError, match="no such key file"):
        signing.load_private_key(tmp_path / "missing.key")


@pytest.mark.parametrize("text,message", [
    ("ssh-ed25519 AAAA", "must start with 'ed25519:'"),
    ("ed25519:!!!", "not valid base64"),
    ("ed25519:AAAA", "has 32 bytes, this one has 3"),
])
def test_bad_public_key_text(text, message):
    with pytest.raises(SignatureError, match=message):
        signing.normalize_public_key(text)
