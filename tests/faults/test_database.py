"""Families "locks and read-only files" and "corruption" (docs/reliability.md)."""

from __future__ import annotations

import sqlite3

import pytest

from .conftest import LockHolder, assert_ok, assert_refused, damage, fingerprint, leftovers, run_cli

READERS = [["search", "Mü"], ["export", "contacts", "{tmp}/c.csv"], ["plugin", "list"], ["db", "check"]]
READER_IDS = ["search", "export", "plugin-list", "db-check"]
WRITERS = [["demo-data", "--contacts", "2", "--seed", "9"], ["import", "contacts", "{tmp}/in.csv"],
           ["plugin", "uninstall", "nothing-here", "--drop-data"]]
WRITER_IDS = ["demo-data", "import", "uninstall-drop-data"]


def _args(command, tmp_path):
    (tmp_path / "in.csv").write_text("first_name,last_name\nAda,Lovelace\n")
    return [a.format(tmp=tmp_path) for a in command]


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_readers_work_while_another_process_writes(fhome, tmp_path, command):
    holder = LockHolder(fhome / "crm.sqlite3")
    try:
        result = run_cli(fhome, *_args(command, tmp_path), env={"CRM_DESKTOP_LOCK_WAIT": "10"})
    finally:
        holder.release()
    assert_ok(result)
    assert result.seconds < 8, "a reader waited for the write lock"


@pytest.mark.parametrize("command", WRITERS[:2], ids=WRITER_IDS[:2])
def test_a_writer_that_cannot_get_the_lock_says_so_in_one_line(fhome, tmp_path, command):
    holder = LockHolder(fhome / "crm.sqlite3")
    try:
        before = fingerprint(fhome)
        result = run_cli(fhome, *_args(command, tmp_path))
    finally:
        holder.release()
    assert_refused(result, "another crm-desktop process is writing", "try again")
    assert fingerprint(fhome) == before


@pytest.mark.parametrize("command", [["search", "x"], ["db", "check"], ["demo-data", "--contacts", "1"]],
                         ids=["search", "db-check", "demo-data"])
def test_an_exclusive_lock_is_reported_as_a_lock_not_as_damage(fhome, command):
    holder = LockHolder(fhome / "crm.sqlite3", exclusive=True)
    try:
        result = run_cli(fhome, *command)
    finally:
        holder.release()
    assert_refused(result, "another crm-desktop process is writing")
    assert "damaged" not in result.err and "problem" not in result.out


def test_db_check_under_a_write_lock_checks_what_it_can_and_says_what_it_skipped(fhome):
    holder = LockHolder(fhome / "crm.sqlite3")
    try:
        result = run_cli(fhome, "db", "check")
    finally:
        holder.release()
    assert_ok(result, "ok:", "search index not checked: another crm-desktop process is writing")


# --------------------------------------------------------------------------- corruption


@pytest.fixture
def damaged(fhome):
    db = fhome / "crm.sqlite3"
    conn = sqlite3.connect(db)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    damage(db, page=pages // 2)
    return fhome


@pytest.mark.parametrize("command", [["search", "a"], ["export", "contacts", "{tmp}/c.csv"],
                                     ["demo-data", "--contacts", "2"], ["import", "contacts", "{tmp}/in.csv"],
                                     ["db", "upgrade"], ["plugin", "uninstall", "x", "--drop-data"]],
                         ids=["search", "export", "demo-data", "import", "db-upgrade", "uninstall-drop-data"])
def test_a_damaged_database_is_refused_in_one_line_that_offers_recover(damaged, tmp_path, command):
    before = fingerprint(damaged)
    result = run_cli(damaged, *_args(command, tmp_path))
    assert_refused(result, "damaged", "crm-desktop db recover")
    assert fingerprint(damaged) == before and leftovers(damaged, tmp_path) == []
    assert not (tmp_path / "c.csv").exists()


def test_db_check_names_the_damage(damaged):
    result = run_cli(damaged, "db", "check")
    assert_refused(result, "damaged", "db recover")
    assert "problem:" in result.out


def test_db_recover_restores_the_backup_salvages_rows_and_keeps_the_damaged_file(damaged):
    original = (damaged / "crm.sqlite3").read_bytes()
    result = run_cli(damaged, "db", "recover")
    assert_ok(result, "recovered from the backup crm-manual.sqlite3", "the damaged file is kept as")
    kept = [p for p in damaged.iterdir() if p.name.startswith("crm.sqlite3.damaged-") and p.name.count("-") == 1]
    assert len(kept) == 1 and kept[0].read_bytes() == original
    assert_ok(run_cli(damaged, "db", "check"), "ok:")
    count = sqlite3.connect(damaged / "crm.sqlite3").execute("SELECT count(*) FROM contacts").fetchone()[0]
    assert count >= 40  # at least what the backup had
    assert leftovers(damaged) == []


def test_db_recover_of_a_sound_database_changes_nothing(fhome):
    before = fingerprint(fhome)
    assert_refused(run_cli(fhome, "db", "recover"), "not damaged")
    assert fingerprint(fhome) == before


def test_a_truncated_database_is_refused(fhome):
    db = fhome / "crm.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    result = run_cli(fhome, "demo-data", "--contacts", "1")
    assert_refused(result, "damaged", "db recover")
    assert db.read_bytes() == data[: len(data) // 2]


@pytest.mark.parametrize("content", [b"name,email\nAda,ada@example.com\n", b"SQLite format 2\x00" + b"\x00" * 200],
                         ids=["text-file", "bad-header"])
def test_a_file_that_is_not_a_sqlite_database_is_refused(tmp_path, content):
    home = tmp_path / "home"
    home.mkdir()
    (home / "crm.sqlite3").write_bytes(content)
    result = run_cli(home, "demo-data", "--contacts", "1")
    assert_refused(result, "is not a SQLite database")
    assert (home / "crm.sqlite3").read_bytes() == content


@pytest.mark.parametrize("command", [["demo-data", "--contacts", "1"], ["search", "x"], ["db", "upgrade"],
                                     ["plugin", "list"], ["db", "check"]],
                         ids=["demo-data", "search", "db-upgrade", "plugin-list", "db-check"])
def test_another_programs_database_gets_no_crm_tables(tmp_path, command):
    home = tmp_path / "home"
    home.mkdir()
    conn = sqlite3.connect(home / "crm.sqlite3")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.commit()
    conn.close()
    before = fingerprint(home)
    result = run_cli(home, *command)
    if command == ["plugin", "list"]:
        assert_ok(result)  # plugin list never opens the database
    else:
        assert_refused(result, "is not a crm-desktop database", "invoices")
    assert fingerprint(home) == before
