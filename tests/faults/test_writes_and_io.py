"""Families "writes over app files" and "ordinary I/O errors" (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import resource
import shutil

import pytest

from .conftest import (as_nobody, assert_ok, assert_refused, can_drop_privileges, fingerprint, leftovers,
                       run_cli, write_plugin)

OWNED = ["crm.sqlite3", "crm.sqlite3-wal", "crm.sqlite3-shm", "backups/crm-manual.sqlite3", "policy.json",
         "plugins-state.json", "settings.json"]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
@pytest.mark.parametrize("owned", OWNED)
def test_export_never_writes_over_a_file_the_app_owns(fhome, owned, force):
    target = fhome / owned
    before, existed = fingerprint(fhome), target.exists()
    content = target.read_bytes() if existed else None
    result = run_cli(fhome, "export", "contacts", str(target), *force)
    assert_refused(result, str(target))
    assert "crm-desktop owns" in result.error_lines[0] or "exists already" in result.error_lines[0]
    assert fingerprint(fhome) == before and leftovers(fhome) == []
    assert (target.read_bytes() if existed else None) == content if owned != "crm.sqlite3-shm" else True


def test_export_through_a_symlink_to_the_database_is_refused(fhome, tmp_path):
    link = tmp_path / "contacts.csv"
    link.symlink_to(fhome / "crm.sqlite3")
    before = fingerprint(fhome)
    assert_refused(run_cli(fhome, "export", "contacts", str(link), "--force"), "crm-desktop owns")
    assert fingerprint(fhome) == before and link.is_symlink()


def test_export_through_a_hard_link_to_the_database_is_refused(fhome, tmp_path):
    link = tmp_path / "contacts.csv"
    os.link(fhome / "crm.sqlite3", link)
    before = fingerprint(fhome)
    assert_refused(run_cli(fhome, "export", "contacts", str(link), "--force"), "crm-desktop owns")
    assert fingerprint(fhome) == before


def test_export_over_an_existing_file_needs_force(fhome, tmp_path):
    target = tmp_path / "mine.csv"
    target.write_text("precious\n")
    assert_refused(run_cli(fhome, "export", "contacts", str(target)), "exists already", "--force")
    assert target.read_text() == "precious\n"
    assert_ok(run_cli(fhome, "export", "contacts", str(target), "--force"), "exported 45 contacts")
    assert "precious" not in target.read_text() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [
    ["export", "contacts", "{dir}"],
    ["export", "companies", "{missing}/out.csv"],
    ["export", "contacts", "{file}/out.csv"],
    ["db", "backup", "{dir}"],
    ["db", "backup", "{missing}/copy.sqlite3"],
    ["keys", "generate", "--out", "{missing}/k"],
    ["keys", "generate", "--out", "{file}/k"],
], ids=["export-to-folder", "export-missing-folder", "export-under-a-file", "backup-to-folder",
        "backup-missing-folder", "keys-missing-folder", "keys-under-a-file"])
def test_a_folder_where_a_file_is_expected_and_missing_folders(fhome, tmp_path, command):
    (tmp_path / "afile").write_text("x")
    args = [a.format(dir=tmp_path, missing=tmp_path / "nope", file=tmp_path / "afile") for a in command]
    before = fingerprint(fhome)
    result = run_cli(fhome, *args)
    assert_refused(result)
    assert any(w in result.error_lines[0] for w in ("folder", "not a folder", "is a file")), result.err
    assert fingerprint(fhome) == before and leftovers(fhome, tmp_path) == []


@pytest.mark.parametrize("command", [
    ["db", "backup", "{home}/crm.sqlite3", "--force"],
    ["db", "backup", "{home}/backups/crm-manual.sqlite3", "--force"],
    ["plugin", "pack", "{plugin}", "-o", "{home}/crm.sqlite3", "--force"],
    ["keys", "generate", "--out", "{home}/backups/signing"],
    ["keys", "generate", "--out", "{home}/crm.sqlite3-wal"],
], ids=["backup-over-db", "backup-over-backup", "pack-over-db", "keys-into-backups", "keys-beside-as-wal"])
def test_no_command_writes_over_app_files(fhome, tmp_path, command):
    plugin = write_plugin(tmp_path, "packme")
    backup = fhome / "backups" / "crm-manual.sqlite3"
    backup_bytes = backup.read_bytes()
    args = [a.format(home=fhome, plugin=plugin) for a in command]
    before = fingerprint(fhome)
    result = run_cli(fhome, *args)
    if command[0] == "keys" and "wal" in command[-1]:
        # keys write PREFIX.key / PREFIX.pub: new names, not the WAL itself; the WAL is untouched
        assert result.code == 0 and fingerprint(fhome) == before
        return
    assert_refused(result, "crm-desktop owns")
    assert fingerprint(fhome) == before and backup.read_bytes() == backup_bytes and leftovers(fhome) == []


def test_sign_refuses_a_signature_path_that_is_a_link_to_the_database(fhome, tmp_path):
    plugin = write_plugin(tmp_path, "signme")
    bundle = tmp_path / "signme.crmplugin"
    assert run_cli(fhome, "plugin", "pack", str(plugin), "-o", str(bundle)).code == 0
    assert run_cli(fhome, "keys", "generate", "--out", str(tmp_path / "k")).code == 0
    (tmp_path / "signme.crmplugin.sig").symlink_to(fhome / "crm.sqlite3")
    before = fingerprint(fhome)
    assert_refused(run_cli(fhome, "plugin", "sign", str(bundle), "--key", str(tmp_path / "k.key")), "crm-desktop owns")
    assert fingerprint(fhome) == before


def test_keys_generate_refuses_existing_keys(fhome, tmp_path):
    assert run_cli(fhome, "keys", "generate", "--out", str(tmp_path / "k")).code == 0
    key = (tmp_path / "k.key").read_bytes()
    assert_refused(run_cli(fhome, "keys", "generate", "--out", str(tmp_path / "k")), "exists already")
    assert (tmp_path / "k.key").read_bytes() == key


# --------------------------------------------------------------------------- disk full


def _file_size_limit(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG
    return apply


@pytest.fixture(scope="module")
def big_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault-big") / "home"
    assert run_cli(root, "demo-data", "--contacts", "1500").code == 0
    return root


@pytest.mark.parametrize("command", [
    ["export", "contacts", "{out}/contacts.csv"],
    ["export", "contacts", "{out}/contacts.vcf"],
    ["db", "backup", "{out}/copy.sqlite3"],
], ids=["export-csv", "export-vcard", "backup"])
def test_disk_full_while_writing_a_file(big_home, tmp_path, command):
    home = tmp_path / "home"
    shutil.copytree(big_home, home)
    args = [a.format(out=tmp_path) for a in command]
    before = fingerprint(home)
    result = run_cli(home, *args, preexec=_file_size_limit(64 * 1024))
    assert_refused(result, args[-1], "writing failed", "nothing was written")
    assert fingerprint(home) == before and leftovers(home, tmp_path) == []
    assert not any(p.name.startswith(("contacts", "copy")) for p in tmp_path.iterdir())


def test_disk_full_while_packing_a_plugin(fhome, tmp_path):
    plugin = write_plugin(tmp_path, "bulky")
    (plugin / "data.bin").write_bytes(os.urandom(300_000))
    result = run_cli(fhome, "plugin", "pack", str(plugin), "-o", str(tmp_path / "bulky.crmplugin"),
                     preexec=_file_size_limit(100_000))
    assert_refused(result, "bulky.crmplugin", "too large")
    assert not (tmp_path / "bulky.crmplugin").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [["demo-data", "--contacts", "3000", "--seed", "3"]], ids=["demo-data"])
def test_disk_full_while_writing_the_database(fhome, command):
    before = fingerprint(fhome)
    size = (fhome / "crm.sqlite3").stat().st_size
    result = run_cli(fhome, *command, preexec=_file_size_limit(size + 64 * 1024))
    assert_refused(result)
    assert fingerprint(fhome) == before


# --------------------------------------------------------------------------- the home itself


@pytest.mark.parametrize("command", [["search", "x"], ["demo-data", "--contacts", "1"], ["plugin", "list"],
                                     ["db", "check"], ["export", "contacts", "/tmp/never.csv"]],
                         ids=["search", "demo-data", "plugin-list", "db-check", "export"])
def test_home_is_a_file(tmp_path, command):
    home = tmp_path / "home"
    home.write_text("not a folder")
    result = run_cli(home, *command)
    assert_refused(result, str(home), "is a file, not a folder")
    assert home.read_text() == "not a folder" and not os.path.exists("/tmp/never.csv")


def test_home_below_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_refused(run_cli(tmp_path / "f" / "home", "search", "x"), "is a file, not a folder")


needs_root = pytest.mark.skipif(not can_drop_privileges(), reason="permission cases drop root to nobody")


@needs_root
def test_read_only_home(world_dir):
    home = world_dir / "home"
    home.mkdir(mode=0o555)
    home.chmod(0o555)
    result = run_cli(home, "demo-data", "--contacts", "1", preexec=as_nobody)
    assert_refused(result, str(home), "permission denied")
    assert list(home.iterdir()) == []


@needs_root
@pytest.mark.parametrize("command", [
    ["keys", "generate", "--out", "{ro}/k"],
    ["plugin", "pack", "{plugin}", "-o", "{ro}/p.crmplugin"],
    ["plugin", "new", "fresh", "--dir", "{ro}"],
], ids=["keys", "pack", "new"])
def test_writing_into_a_folder_without_permission(world_dir, command):
    ro = world_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    plugin = write_plugin(world_dir, "packme")
    home = world_dir / "home"
    home.mkdir()
    home.chmod(0o777)
    args = [a.format(ro=ro, plugin=plugin) for a in command]
    result = run_cli(home, *args, preexec=as_nobody)
    assert_refused(result, str(ro))
    assert list(ro.iterdir()) == []


@needs_root
def test_export_into_a_folder_without_permission(fhome, world_dir):
    home = world_dir / "home"
    shutil.copytree(fhome, home)
    for dirpath, dirs, files in os.walk(home):
        os.chmod(dirpath, 0o777)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o666)
    ro = world_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    before = fingerprint(home)
    result = run_cli(home, "export", "contacts", str(ro / "c.csv"), preexec=as_nobody)
    assert_refused(result, "no permission to write", str(ro))
    assert fingerprint(home) == before and list(ro.iterdir()) == []


# --------------------------------------------------------------------------- the keyring


@pytest.mark.parametrize("backend", ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring"],
                         ids=["null", "fail"])
def test_a_secret_without_a_usable_keyring_is_refused(fhome, backend):
    write_plugin(fhome / "plugins", "secretive", settings={"schema": {
        "apiKey": {"type": "string", "secret": True}, "limit": {"type": "integer"}}})
    result = run_cli(fhome, "plugin", "config", "secretive", "limit=3", "apiKey=s3cret",
                     env={"PYTHON_KEYRING_BACKEND": backend})
    assert_refused(result, "apiKey", "keyring", "nothing was stored")
    assert "s3cret" not in result.err
    assert not (fhome / "plugin-settings" / "secretive.json").exists()  # the plain value was not stored either


def test_plain_settings_work_without_a_keyring(fhome):
    write_plugin(fhome / "plugins", "plain", settings={"schema": {"limit": {"type": "integer"}}})
    assert_ok(run_cli(fhome, "plugin", "config", "plain", "limit=3"), "limit = 3")
    assert json.loads((fhome / "plugin-settings" / "plain.json").read_text()) == {"limit": 3}
