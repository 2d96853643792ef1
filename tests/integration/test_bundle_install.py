"""Installing real .crmplugin files from disk, and a corpus of hostile or broken ones.

Every hostile bundle must be refused with a message naming the bundle, the
entry and the rule, and leave the file system exactly as it was: nothing
written outside the staging folder, and the staging folder removed.
"""

from __future__ import annotations

import hashlib
import json
import stat
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from crm_desktop.plugin_host import bundle, integrity, signing
from crm_desktop.plugin_host.bundle import BundleError, BundleLimits, install_bundle
from crm_desktop.plugin_host.policy import Policy

GOOD_MANIFEST = {"name": "hostile", "version": "1.0.0", "main": "main.py", "permissions": ["contacts:read"]}
GOOD_MAIN = b"def hello():\n    return 'hi'\n"


# ----------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, object]:
    """Every file and folder under root, with each file's sha256."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = ("link", str(path.readlink()))
        elif path.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@dataclass
class Entry:
    name: str
    data: bytes
    mode: int = stat.S_IFREG | 0o644
    compress: int = zipfile.ZIP_DEFLATED
    flag_bits: int = 0
    listed: bool = True


def default_entries(manifest: dict | None = None) -> list[Entry]:
    return [Entry("plugin.json", json.dumps(manifest or GOOD_MANIFEST).encode()), Entry("main.py", GOOD_MAIN)]


def write_zip(path: Path, entries: list[Entry], *, file_list: dict | None = None, plugin: str = "hostile",
              version: str = "1.0.0", extra_rows: list[dict] = (), with_list: bool = True) -> Path:
    """A zip with exactly these entries, and a file list computed from them unless given."""
    rows = [
        {"path": e.name, "size": len(e.data), "sha256": hashlib.sha256(e.data).hexdigest()}
        for e in entries if e.listed and not e.name.endswith("/")
    ] + list(extra_rows)
    doc = file_list or {"format": bundle.FILE_LIST_FORMAT, "plugin": plugin, "version": version, "files": rows}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(path, "w") as zf:
            for e in entries:
                info = zipfile.ZipInfo(e.name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = e.mode << 16
                info.compress_type = e.compress
                info.flag_bits |= e.flag_bits
                info.create_system = 3
                zf.writestr(info, e.data)
            if with_list:
                zf.writestr(bundle.FILE_LIST_NAME, json.dumps(doc))
    for e in entries:
        if e.flag_bits:
            _set_flag_bits(path, e.name, e.flag_bits)  # zipfile clears them when writing
    return path


def _set_flag_bits(path: Path, name: str, bits: int) -> None:
    """Set general-purpose flag bits of one entry in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(name).header_offset
    data[offset + 6] |= bits
    encoded = name.encode()
    at = 0
    while (at := data.find(b"PK\x01\x02", at + 1)) != -1:
        name_len = int.from_bytes(data[at + 28:at + 30], "little")
        if bytes(data[at + 46:at + 46 + name_len]) == encoded:
            data[at + 8] |= bits
    path.write_bytes(bytes(data))


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    admin_key, admin_pub = signing.generate_keypair(folder / "admin")
    other_key, _ = signing.generate_keypair(folder / "other")
    return {
        "admin": signing.load_private_key(admin_key),
        "admin_pub": signing.load_public_key(admin_pub),
        "other": signing.load_private_key(other_key),
    }


@pytest.fixture
def plugins_dir(tmp_path) -> Path:
    folder = tmp_path / "home" / "plugins"
    folder.mkdir(parents=True)
    return folder


def make_plugin(folder: Path, name: str = "sample", version: str = "1.0.0", body: str = "VALUE = 1\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(json.dumps(
        {"name": name, "version": version, "main": "main.py", "permissions": ["contacts:read"]}))
    (folder / "main.py").write_text(body)
    (folder / "pkg").mkdir(exist_ok=True)
    (folder / "pkg" / "helpers.py").write_text("def f():\n    return 2\n")
    return folder


def signed(bundle_path: Path, key, name: str = "hostile", version: str = "1.0.0") -> Path:
    signing.sign_bundle(bundle_path, key, name, version)
    return bundle_path


# ----------------------------------------------------------------------------- the hostile corpus


@dataclass
class Case:
    bundle: Path
    expect: str  # part of the refusal message
    policy: Policy = field(default_factory=Policy)
    limits: BundleLimits = bundle.DEFAULT_LIMITS
    escape: Path | None = None  # a file the entry would have written outside the plugins folder


def _traversal(spelling: str) -> Callable[[Path, dict], Case]:
    def build(d: Path, keys: dict) -> Case:
        entries = default_entries() + [Entry(spelling, b"pwned")]
        return Case(write_zip(d / "b.crmplugin", entries), "path traversal", escape=d / "evil.txt")
    return build


def _case(fn: Callable[[Path, dict], Case]) -> Callable[[Path, dict], Case]:
    return fn


def c_absolute(d, keys):
    target = d / "abs-evil.txt"
    return Case(write_zip(d / "b.crmplugin", default_entries() + [Entry(str(target), b"x")]), "an absolute path",
                escape=target)


def c_backslash(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries() + [Entry("..\\evil.txt", b"x")]), "backslash")


def c_drive_letter(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries() + [Entry("C:/evil.txt", b"x")]), "drive letter")


def c_symlink(d, keys):
    entries = default_entries() + [Entry("link", str(d / "outside").encode(), mode=stat.S_IFLNK | 0o777)]
    return Case(write_zip(d / "b.crmplugin", entries), "symlink")


def c_duplicate(d, keys):
    entries = default_entries() + [Entry("main.py", b"import os\nos.system('evil')\n", listed=False)]
    return Case(write_zip(d / "b.crmplugin", entries), "duplicate entry name")


def c_case_collision(d, keys):
    entries = default_entries() + [Entry("Main.py", b"x = 1\n")]
    return Case(write_zip(d / "b.crmplugin", entries), "collides with 'main.py' on case-insensitive")


def c_unicode_collision(d, keys):
    entries = default_entries() + [
        Entry(unicodedata.normalize("NFC", "café.py"), b"a = 1\n"),
        Entry(unicodedata.normalize("NFD", "café.py"), b"b = 1\n"),
    ]
    return Case(write_zip(d / "b.crmplugin", entries), "collides with")


def c_file_and_folder(d, keys):
    entries = default_entries() + [Entry("data", b"1"), Entry("data/x.txt", b"2")]
    return Case(write_zip(d / "b.crmplugin", entries), "same name as a folder")


def c_bomb_size_listed(d, keys):
    big = b"\0" * (2 * 1024 * 1024)
    entries = default_entries() + [Entry("big.bin", big)]
    return Case(write_zip(d / "b.crmplugin", entries), "a member is at most 1048576 bytes",
                limits=BundleLimits(max_member_bytes=1024 * 1024))


def c_bomb_size_lying_list(d, keys):
    # The file list (and so any header-based precheck) says 10 bytes; the stream has 2 MB.
    big = b"\0" * (2 * 1024 * 1024)
    entries = default_entries() + [Entry("big.bin", big, listed=False)]
    row = {"path": "big.bin", "size": 10, "sha256": hashlib.sha256(b"0123456789").hexdigest()}
    return Case(write_zip(d / "b.crmplugin", entries, extra_rows=[row]), "larger than the 10 bytes")


def c_bomb_total(d, keys):
    entries = default_entries() + [Entry(f"part{i}.bin", bytes([i]) * 400_000) for i in range(5)]
    return Case(write_zip(d / "b.crmplugin", entries), "a bundle holds at most 1000000",
                limits=BundleLimits(max_total_bytes=1_000_000))


def c_bomb_ratio(d, keys):
    # 8 MB of zeros deflates to ~8 KB: 1000:1. Default limits.
    entries = default_entries() + [Entry("zeros.bin", b"\0" * (8 * 1024 * 1024))]
    return Case(write_zip(d / "b.crmplugin", entries), "compression ratio above 100:1")


def c_too_many_entries(d, keys):
    entries = default_entries() + [Entry(f"f{i:03}.txt", b"x") for i in range(60)]
    return Case(write_zip(d / "b.crmplugin", entries), "a bundle holds at most 50",
                limits=BundleLimits(max_entries=50))


def c_not_in_list(d, keys):
    entries = default_entries() + [Entry("extra.py", b"import socket\n", listed=False)]
    return Case(write_zip(d / "b.crmplugin", entries), "entry 'extra.py': refused: not in CRMPLUGIN-FILES.json")


def c_missing_from_zip(d, keys):
    row = {"path": "gone.py", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
    return Case(write_zip(d / "b.crmplugin", default_entries(), extra_rows=[row]), "listed in CRMPLUGIN-FILES.json but missing")


def c_content_differs_from_list(d, keys):
    entries = default_entries()
    entries[1] = Entry("main.py", GOOD_MAIN.replace(b"hi", b"ho"), listed=False)
    row = {"path": "main.py", "size": len(GOOD_MAIN), "sha256": hashlib.sha256(GOOD_MAIN).hexdigest()}
    return Case(write_zip(d / "b.crmplugin", entries, extra_rows=[row]), "sha256 differs from CRMPLUGIN-FILES.json")


def c_tampered_byte_signed(d, keys):
    path = signed(write_zip(d / "b.crmplugin", [Entry(e.name, e.data, compress=zipfile.ZIP_STORED)
                                                 for e in default_entries()]), keys["admin"])
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"'hi'")
    data[at + 1] = ord("H")  # one byte in main.py
    path.write_bytes(bytes(data))
    return Case(path, "changed after signing", Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True))


def c_wrong_key(d, keys):
    path = signed(write_zip(d / "b.crmplugin", default_entries()), keys["other"])
    return Case(path, "not one of the policy's trusted keys",
                Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True))


def c_altered_signature(d, keys):
    path = signed(write_zip(d / "b.crmplugin", default_entries()), keys["admin"])
    sig = signing.sig_path_for(path)
    doc = json.loads(sig.read_text())
    doc["version"] = "9.9.9"
    sig.write_text(json.dumps(doc))
    return Case(path, "does not verify", Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True))


def c_signed_for_another_plugin(d, keys):
    path = signed(write_zip(d / "b.crmplugin", default_entries()), keys["admin"], name="trusted-tool")
    return Case(path, "the signature is for trusted-tool 1.0.0, but the bundle holds hostile 1.0.0",
                Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True))


def c_unsigned_but_required(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries()), "unsigned",
                Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True))


def c_truncated(d, keys):
    path = write_zip(d / "b.crmplugin", default_entries())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Case(path, "not a valid zip archive")


def c_manifest_not_json(d, keys):
    entries = [Entry("plugin.json", b"{name: hostile"), Entry("main.py", GOOD_MAIN)]
    return Case(write_zip(d / "b.crmplugin", entries), "entry 'plugin.json': invalid JSON")


def c_manifest_bad_name(d, keys):
    entries = default_entries({**GOOD_MANIFEST, "name": "../Evil"})
    return Case(write_zip(d / "b.crmplugin", entries, plugin="../Evil"), "name '../Evil' is invalid")


def c_manifest_bad_version(d, keys):
    entries = default_entries({**GOOD_MANIFEST, "version": "one"})
    return Case(write_zip(d / "b.crmplugin", entries, version="one"), "version 'one' is invalid")


def c_manifest_disagrees_with_list(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries(), version="2.0.0"),
                "CRMPLUGIN-FILES.json says hostile 2.0.0 but plugin.json says hostile 1.0.0")


def c_no_file_list(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries(), with_list=False), "no CRMPLUGIN-FILES.json")


def c_bytecode(d, keys):
    entries = default_entries() + [Entry("__pycache__/main.cpython-311.pyc", b"\x00" * 16)]
    return Case(write_zip(d / "b.crmplugin", entries), "compiled bytecode")


def c_encrypted(d, keys):
    entries = default_entries() + [Entry("secret.txt", b"x", compress=zipfile.ZIP_STORED, flag_bits=0x1)]
    return Case(write_zip(d / "b.crmplugin", entries), "encrypted")


def c_blocked_by_policy(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries()), "blocked by the policy",
                Policy(blocked_plugins=frozenset({"hostile"})))


def c_not_allowed(d, keys):
    return Case(write_zip(d / "b.crmplugin", default_entries()), "not in the policy's allowedPlugins",
                Policy(allowed_plugins=frozenset({"sample"})))


def c_strict_static_checks(d, keys):
    entries = default_entries() + [Entry("net.py", b"import socket\n\ns = socket.socket()\n")]
    return Case(write_zip(d / "b.crmplugin", entries), "net.py:1: error: [network-import] imports socket",
                Policy(strict_static_checks=True))


CORPUS = {
    "traversal-dotdot": _traversal("../evil.txt"),
    "traversal-nested": _traversal("pkg/../../evil.txt"),
    "traversal-dot-prefix": _traversal("./../evil.txt"),
    "traversal-deep": _traversal("a/b/c/../../../../evil.txt"),
    "absolute-path": c_absolute,
    "backslash": c_backslash,
    "drive-letter": c_drive_letter,
    "symlink": c_symlink,
    "duplicate-name": c_duplicate,
    "case-collision": c_case_collision,
    "unicode-collision": c_unicode_collision,
    "file-and-folder": c_file_and_folder,
    "bomb-size-listed": c_bomb_size_listed,
    "bomb-size-lying-list": c_bomb_size_lying_list,
    "bomb-total": c_bomb_total,
    "bomb-ratio": c_bomb_ratio,
    "too-many-entries": c_too_many_entries,
    "entry-not-in-list": c_not_in_list,
    "listed-but-missing": c_missing_from_zip,
    "content-differs-from-list": c_content_differs_from_list,
    "tampered-byte-signed": c_tampered_byte_signed,
    "wrong-key": c_wrong_key,
    "altered-signature": c_altered_signature,
    "signed-for-another-plugin": c_signed_for_another_plugin,
    "unsigned-but-required": c_unsigned_but_required,
    "truncated-zip": c_truncated,
    "manifest-not-json": c_manifest_not_json,
    "manifest-bad-name": c_manifest_bad_name,
    "manifest-bad-version": c_manifest_bad_version,
    "manifest-disagrees-with-list": c_manifest_disagrees_with_list,
    "no-file-list": c_no_file_list,
    "bytecode": c_bytecode,
    "encrypted-entry": c_encrypted,
    "blocked-by-policy": c_blocked_by_policy,
    "not-allowed-by-policy": c_not_allowed,
    "strict-static-checks": c_strict_static_checks,
}


@pytest.mark.parametrize("case_name", sorted(CORPUS))
def test_hostile_bundle_is_refused_and_changes_nothing(case_name, tmp_path, keys, plugins_dir):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    case = CORPUS[case_name](bundles, keys)
    before = snapshot(tmp_path)

    with pytest.raises(BundleError) as excinfo:
        install_bundle(case.bundle, plugins_dir, case.policy, limits=case.limits)

    message = str(excinfo.value)
    assert case.expect in message
    assert message.startswith(f"bundle {case.bundle.name}"), message  # names the bundle
    assert snapshot(tmp_path) == before  # nothing written anywhere, staging removed
    assert list(plugins_dir.iterdir()) == []
    if case.escape is not None:
        assert not case.escape.exists()


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 20


def test_refusal_during_extraction_removes_the_partly_filled_staging_folder(tmp_path, plugins_dir, monkeypatch):
    # The bad member sorts last, so earlier members were already extracted when it is refused.
    entries = default_entries() + [Entry("zzz.bin", b"\0" * (8 * 1024 * 1024))]
    path = write_zip(tmp_path / "b.crmplugin", entries)
    staged_at: list[Path] = []
    real_extract = bundle.BundleVerifier.extract_to

    def spy(self, staging):
        staged_at.append(staging)
        return real_extract(self, staging)

    monkeypatch.setattr(bundle.BundleVerifier, "extract_to", spy)
    with pytest.raises(BundleError, match="compression ratio"):
        install_bundle(path, plugins_dir)
    assert staged_at and staged_at[0].parent == plugins_dir
    assert not staged_at[0].exists()
    assert list(plugins_dir.iterdir()) == []


# ----------------------------------------------------------------------------- good installs and updates


def test_signed_bundle_installs_with_its_file_list_and_record(tmp_path, keys, plugins_dir):
    src = make_plugin(tmp_path / "src" / "sample")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"junk")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: x")
    packed = bundle.pack_plugin(src, tmp_path / "sample.crmplugin")
    signing.sign_bundle(packed.path, keys["admin"], "sample", "1.0.0")
    policy = Policy(trusted_keys=frozenset([keys["admin_pub"]]), require_signature=True)

    result = install_bundle(packed.path, plugins_dir, policy)

    assert result.path == plugins_dir / "sample"
    assert sorted(p.relative_to(result.path).as_posix() for p in result.path.rglob("*") if p.is_file()) == [
        "CRMPLUGIN-FILES.json", "CRMPLUGIN-INSTALL.json", "main.py", "pkg/helpers.py", "plugin.json"]
    record = json.loads((result.path / "CRMPLUGIN-INSTALL.json").read_text())
    assert record["keyId"] == signing.key_id(keys["admin_pub"]) and record["trusted"] is True
    assert result.plan.signature.trusted
    assert [p.name for p in plugins_dir.iterdir()] == ["sample"]  # no staging or old folders left
    assert integrity.check_plugin_folder(result.path).ok


def test_pack_is_reproducible(tmp_path):
    src = make_plugin(tmp_path / "sample")
    a = bundle.pack_plugin(src, tmp_path / "a.crmplugin").path.read_bytes()
    b = bundle.pack_plugin(src, tmp_path / "b.crmplugin").path.read_bytes()
    assert a == b


def test_pack_refuses_a_symlink(tmp_path):
    src = make_plugin(tmp_path / "sample")
    (src / "link.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(BundleError, match="is a symlink; bundles cannot hold links"):
        bundle.pack_plugin(src, tmp_path / "s.crmplugin")
    assert not (tmp_path / "s.crmplugin").exists()


def test_update_replaces_the_folder_and_keeps_data_and_settings(tmp_path, plugins_dir):
    home = plugins_dir.parent
    v1 = bundle.pack_plugin(make_plugin(tmp_path / "v1" / "sample", body="VALUE = 1\n"), tmp_path / "v1.crmplugin")
    v2_src = make_plugin(tmp_path / "v2" / "sample", version="1.1.0", body="VALUE = 2\n")
    (v2_src / "pkg" / "helpers.py").unlink()  # a file removed in the new version
    v2 = bundle.pack_plugin(v2_src, tmp_path / "v2.crmplugin")
    install_bundle(v1.path, plugins_dir)
    data = home / "plugin-data" / "sample"
    data.mkdir(parents=True)
    (data / "cache.db").write_text("user data")
    (home / "settings.json").write_text('{"plugins": {"sample": {"apiKey": "k"}}}')

    result = install_bundle(v2.path, plugins_dir)

    assert result.previous_version == "1.0.0" and result.version == "1.1.0"
    assert (plugins_dir / "sample" / "main.py").read_text() == "VALUE = 2\n"
    assert not (plugins_dir / "sample" / "pkg" / "helpers.py").exists()
    assert (data / "cache.db").read_text() == "user data"
    assert json.loads((home / "settings.json").read_text())["plugins"]["sample"]["apiKey"] == "k"
    assert [p.name for p in plugins_dir.iterdir()] == ["sample"]


def test_downgrade_is_refused_and_the_installed_version_stays(tmp_path, plugins_dir):
    v2 = bundle.pack_plugin(make_plugin(tmp_path / "v2" / "sample", version="2.0.0"), tmp_path / "v2.crmplugin")
    v1 = bundle.pack_plugin(make_plugin(tmp_path / "v1" / "sample", version="1.9.0"), tmp_path / "v1.crmplugin")
    install_bundle(v2.path, plugins_dir)
    before = snapshot(tmp_path)

    with pytest.raises(BundleError, match=r"sample 1.9.0 is older than the installed 2.0.0 \(downgrades are not allowed"):
        install_bundle(v1.path, plugins_dir)

    assert snapshot(tmp_path) == before


def test_downgrade_check_uses_the_hosts_lookup(tmp_path, plugins_dir):
    v1 = bundle.pack_plugin(make_plugin(tmp_path / "sample"), tmp_path / "v1.crmplugin")
    with pytest.raises(BundleError, match="older than the installed 3.0"):
        install_bundle(v1.path, plugins_dir, installed_version_lookup=lambda name: "3.0")
    assert list(plugins_dir.iterdir()) == []


def test_failing_post_install_rolls_back_to_the_previous_version(tmp_path, plugins_dir):
    v1 = bundle.pack_plugin(make_plugin(tmp_path / "v1" / "sample", body="VALUE = 1\n"), tmp_path / "v1.crmplugin")
    v2 = bundle.pack_plugin(make_plugin(tmp_path / "v2" / "sample", version="1.1.0", body="VALUE = 2\n"),
                            tmp_path / "v2.crmplugin")
    install_bundle(v1.path, plugins_dir)
    before = snapshot(tmp_path)
    seen, rolled_back = [], []

    def post_install(result):
        seen.append((result.path / "main.py").read_text())  # the new version is in place here
        raise RuntimeError("migration 0002 failed")

    with pytest.raises(BundleError, match=r"migration 0002 failed.*rolled back, version 1.0.0 restored"):
        install_bundle(v2.path, plugins_dir, post_install=post_install, on_rollback=rolled_back.append)

    assert seen == ["VALUE = 2\n"]
    assert [r.version for r in rolled_back] == ["1.1.0"]
    assert snapshot(tmp_path) == before


def test_failing_post_install_of_a_first_install_leaves_nothing(tmp_path, plugins_dir):
    v1 = bundle.pack_plugin(make_plugin(tmp_path / "sample"), tmp_path / "v1.crmplugin")
    with pytest.raises(BundleError, match="nothing left installed"):
        install_bundle(v1.path, plugins_dir, post_install=lambda r: 1 / 0)
    assert list(plugins_dir.iterdir()) == []


def test_declined_approval_changes_nothing_and_shows_the_plan(tmp_path, keys, plugins_dir):
    src = make_plugin(tmp_path / "sample", body="import subprocess\n")
    packed = bundle.pack_plugin(src, tmp_path / "s.crmplugin")
    signing.sign_bundle(packed.path, keys["other"], "sample", "1.0.0")
    plans = []

    with pytest.raises(BundleError, match="install of sample cancelled; nothing changed"):
        install_bundle(packed.path, plugins_dir, approve=lambda plan: plans.append(plan) and False)

    plan = plans[0]
    assert plan.permissions == ["contacts:read"]
    assert "NOT trusted by the policy" in plan.publisher
    assert [str(f) for f in plan.findings] == ["main.py:1: error: [subprocess] imports subprocess (needs 'subprocess')"]
    assert list(plugins_dir.iterdir()) == []


def test_interrupted_install_is_recovered(tmp_path, plugins_dir):
    # The app died between "rename old aside" and "rename staging into place".
    aside = plugins_dir / ".previous-sample-ab12cd34"
    make_plugin(aside)
    (plugins_dir / ".staging-sample-x9_k2").mkdir()
    done = bundle.recover_interrupted_installs(plugins_dir)
    assert [p.name for p in plugins_dir.iterdir()] == ["sample"]
    assert any("restored sample" in line for line in done)


# ----------------------------------------------------------------------------- load-time integrity


def test_a_file_changed_after_install_blocks_the_plugin_naming_the_file(tmp_path, plugins_dir):
    packed = bundle.pack_plugin(make_plugin(tmp_path / "sample"), tmp_path / "s.crmplugin")
    installed = install_bundle(packed.path, plugins_dir).path
    (installed / "__pycache__").mkdir()
    (installed / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"written by python")  # not a change
    assert integrity.check_plugin_folder(installed).ok

    (installed / "pkg" / "helpers.py").write_text("def f():\n    return 3\n")  # same size, new bytes
    with pytest.raises(integrity.IntegrityError,
                       match=r"plugin sample is blocked: file pkg/helpers.py was changed after install \(sha256 differs\)"):
        integrity.verify_plugin_folder(installed)


def test_added_and_missing_files_are_named(tmp_path, plugins_dir):
    packed = bundle.pack_plugin(make_plugin(tmp_path / "sample"), tmp_path / "s.crmplugin")
    installed = install_bundle(packed.path, plugins_dir).path
    (installed / "main.py").unlink()
    (installed / "sitecustomize.py").write_text("import os\n")
    report = integrity.check_plugin_folder(installed)
    assert report.problems == ["file sitecustomize.py was added after install", "file main.py is missing"]


def test_a_plugin_without_a_file_list_is_unmanaged(tmp_path):
    report = integrity.check_plugin_folder(make_plugin(tmp_path / "dev-plugin"))
    assert report.ok and not report.managed


def test_stage_then_discard_for_the_admin_panel_leaves_nothing(tmp_path, plugins_dir):
    # The plugin admin panel stages first, shows the plan, then commits or discards.
    packed = bundle.pack_plugin(make_plugin(tmp_path / "sample"), tmp_path / "s.crmplugin")
    before = snapshot(tmp_path)
    staged = bundle.stage_bundle(packed.path, plugins_dir)
    assert staged.plan.to_json()["publisher"] == "unsigned"
    assert staged.plan.warnings == ["the bundle is unsigned"]
    assert staged.staging.parent == plugins_dir and (staged.staging / "main.py").exists()
    staged.discard()
    assert snapshot(tmp_path) == before
    with pytest.raises(BundleError, match="already committed or discarded"):
        staged.commit()
