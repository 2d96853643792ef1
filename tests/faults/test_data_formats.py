"""Family "data that should not get in or out as is" (docs/reliability.md): control characters,
CSV injection, delimiters, vCard versions, ``--map`` conflicts, ``search --limit``, a database
from a newer app, and what probing found besides (NUL bytes, UTF-16, huge cells, headers)."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from .conftest import assert_ok, assert_refused, fingerprint, leftovers, run_cli

CRLF = "\r\n"


def _write(path, text: str | bytes):
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def _refused(fhome, tmp_path, args, *words, code=2):
    """Run ``args`` and check the whole promise: exit code, one line with ``words``, no traceback,
    the database unchanged, nothing left behind (no temporary and no ``.refused.csv`` file)."""
    before = fingerprint(fhome)
    result = run_cli(fhome, *[str(a) for a in args])
    assert_refused(result, *words, code=code)
    assert fingerprint(fhome) == before
    assert leftovers(fhome, tmp_path) == []
    assert not list(tmp_path.glob("*.refused*.csv"))
    return result


# -- files that are not what they claim to be ------------------------------------------------

BAD_FILES = {
    # a row separated with "," under a ";" header: one garbled field before
    "row-comma-under-semicolon-header": ("contacts", "in.csv", "First Name;Last Name;E-mail" + CRLF
                                         + "Ann;Lee;ann@example.com" + CRLF + "Bob,Ray,bob@example.com" + CRLF,
                                         ["line 3", "','", "';'"]),
    "row-semicolon-under-comma-header": ("contacts", "in.csv", "First Name,Last Name,E-mail\nAnn,Lee,a@example.com\n"
                                         "Zoe;Ray;zoe@example.com\n", ["line 3", "';'", "','"]),
    "company-row-other-delimiter": ("companies", "in.csv", "Name;Website;City\nAcme;acme.example;Bern\n"
                                    "Initech,initech.example,Zug\n", ["line 3", "delimiter"]),
    "vcard-version-9.9": ("contacts", "in.vcf", "BEGIN:VCARD\r\nVERSION:9.9\r\nFN:Zed Zero\r\nEND:VCARD\r\n",
                          ["line 1", "VERSION '9.9'", "2.1, 3.0, 4.0"]),
    "vcard-no-version": ("contacts", "in.vcf", "BEGIN:VCARD\r\nFN:No Version\r\nEND:VCARD\r\n",
                         ["line 1", "no VERSION"]),
    "vcard-second-card-version-5": ("contacts", "in.vcf", "BEGIN:VCARD\nVERSION:3.0\nFN:Good Card\nEND:VCARD\n"
                                    "BEGIN:VCARD\nVERSION:5.0\nFN:Bad Card\nEND:VCARD\n", ["line 5", "'5.0'"]),
    "vcard-two-versions": ("companies", "in.vcf", "BEGIN:VCARD\nVERSION:3.0\nVERSION:4.0\nORG:Twice\nEND:VCARD\n",
                           ["line 1", "'3.0', '4.0'"]),
    "csv-nul-byte": ("contacts", "in.csv", b"First Name,Last Name\nNul\x00l,Byte\n", ["line 2", "NUL byte"]),
    "csv-utf16-without-bom": ("contacts", "in.csv", "First Name,Last Name\nU,Sixteen\n".encode("utf-16-le"),
                              ["line 1", "UTF-16"]),
    "csv-utf16-with-bom": ("contacts", "in.csv", "First Name,Last Name\nU,Sixteen\n".encode("utf-16"),
                           ["UTF-8"]),
    "vcard-utf16": ("contacts", "in.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:U\r\nEND:VCARD\r\n".encode("utf-16-le"),
                    ["NUL byte"]),
    "csv-invalid-utf8": ("contacts", "in.csv", b"First Name,Last Name\nAnn,M\xfcller\n", ["line 2", "UTF-8"]),
    "csv-huge-cell": ("contacts", "in.csv", "First Name,Notes\nAnn," + "y" * 300_000 + "\n",
                      ["line 2", "longer than"]),
    "csv-unclosed-quote-runs-to-the-end": ("contacts", "in.csv", 'First Name,Notes\nAnn,"open\n'
                                           + "Bob,more\n" * 20_000, ["quote"]),
    "csv-overlong-name": ("contacts", "in.csv", "First Name,Last Name\nAnn," + "x" * 5000 + "\n",
                          ["line 2", "last_name", "at most 100 characters"]),
    "csv-headers-differ-only-in-case": ("contacts", "in.csv", "Email,email ,First Name\na@example.com,"
                                        "b@example.com,Dup\n", ["line 1", "'Email' / 'email'", "twice"]),
    "csv-control-character-in-email": ("contacts", "in.csv", "First Name,E-mail\nAnn,ann\x1b@example.com\n",
                                       ["line 2", "email", "control characters"]),
    "csv-control-character-in-phone": ("contacts", "in.csv", "First Name,Phone\nAnn,+41\x1f44 668 18 00\n",
                                       ["line 2", "phone", "control characters"]),
    "csv-control-character-in-id": ("contacts", "in.csv", "Id,First Name\n01a23236-f01d-70a0-9085-40a6742d\x07b24b,"
                                    "Ann\n", ["line 2", "id"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_file_that_is_not_what_it_claims_is_refused_naming_the_line(fhome, tmp_path, case):
    entity, name, content, words = BAD_FILES[case]
    path = _write(tmp_path / name, content)
    _refused(fhome, tmp_path, ["import", entity, path], str(path), *words)


def test_a_row_with_the_other_delimiter_is_set_aside_with_skip_invalid(fhome, tmp_path):
    path = _write(tmp_path / "in.csv", "First Name;Last Name\nAnn;Quill\nBob,Quill\n")
    result = run_cli(fhome, "import", "contacts", str(path), "--skip-invalid")
    assert_ok(result, "1 created", "1 refused", "line 3: refused, separates its cells with ','")
    refused = (tmp_path / "in.refused.csv").read_text(encoding="utf-8-sig")
    assert "Bob,Quill" in refused and leftovers(fhome, tmp_path) == []


def test_a_quoted_value_holding_the_other_delimiter_is_data(fhome, tmp_path):
    path = _write(tmp_path / "in.csv", 'Last Name;First Name\n"Quill, Ann"\n')
    assert_ok(run_cli(fhome, "import", "contacts", str(path)), "1 created")
    assert "Quill, Ann" in run_cli(fhome, "search", "Quill").out


@pytest.mark.parametrize("version", ["2.1", "3.0", "4.0"])
def test_vcard_versions_2_1_3_0_and_4_0_are_read(fhome, tmp_path, version):
    tel = "TEL;CELL:+41 79 123 45 67" if version == "2.1" else "TEL;TYPE=cell:+41 79 123 45 67"
    path = _write(tmp_path / "in.vcf", f"\ufeffBEGIN:VCARD\r\nVERSION:{version}\r\nN:Versit;Vera\r\n"
                                       f"FN:Vera Versit\r\n{tel}\r\nEND:VCARD\r\n")  # with a BOM, too
    assert_ok(run_cli(fhome, "import", "contacts", str(path)), "1 created")
    hits = json.loads(run_cli(fhome, "search", "Versit", "--json").out)
    assert [h["title"] for h in hits] == ["Vera Versit"]


# -- --map ---------------------------------------------------------------------------------------

MAP_CASES = {
    "onto-a-field-another-column-fills": (["--map", "Notes=email"], ["'Notes'", "'email'", "'E-mail' already"]),
    "onto-the-first-name-column": (["--map", "Notes=first_name"], ["'first_name'", "'First Name'"]),
    "two-columns-onto-one-field": (["--map", "Notes=city", "--map", "Last Name=city"], ["both mapped to 'city'"]),
}


@pytest.mark.parametrize("case", sorted(MAP_CASES))
def test_map_conflicts_are_refused(fhome, tmp_path, case):
    args, words = MAP_CASES[case]
    path = _write(tmp_path / "in.csv", "First Name,Last Name,E-mail,Notes\nEve,Mapp,eve@example.com,"
                                       "eve.two@example.com\n")
    _refused(fhome, tmp_path, ["import", "contacts", path, *args], *words)


def test_map_onto_a_field_whose_column_is_mapped_away_works(fhome, tmp_path):
    path = _write(tmp_path / "in.csv", "First Name,Last Name,E-mail,Notes\nEve,Mapp,eve@example.com,"
                                       "eve.two@example.com\n")
    assert_ok(run_cli(fhome, "import", "contacts", str(path), "--map", "Notes=email", "--map", "E-mail=notes"),
              "1 created")
    hit = json.loads(run_cli(fhome, "search", "eve.two", "--json").out)
    assert [h["title"] for h in hit] == ["Eve Mapp"]


# -- search --limit, newer database --------------------------------------------------------------

@pytest.mark.parametrize("limit", ["0", "-1", "1001"])
def test_search_limit_outside_1_to_1000_is_refused(fhome, tmp_path, limit):
    _refused(fhome, tmp_path, ["search", "a", "--limit", limit], "--limit", "from 1 to 1000")


def test_search_limit_1_and_1000_work(fhome):
    assert len(json.loads(run_cli(fhome, "search", "a", "--limit", "1", "--json").out)) == 1
    assert_ok(run_cli(fhome, "search", "a", "--limit", "1000"))


@pytest.mark.parametrize("command", [["db", "check"], ["db", "upgrade"], ["search", "a"]])
def test_a_database_from_a_newer_app_is_named_as_such(fhome, tmp_path, command):
    conn = sqlite3.connect(fhome / "crm.sqlite3")
    conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    conn.commit()
    conn.close()
    result = _refused(fhome, tmp_path, command, "ffff9999", "newer than this app knows", "use a newer crm-desktop")
    assert "needs db upgrade" not in result.out + result.err


# -- control characters: stripped on input, escaped on output ---------------------------------------

HOSTILE_NAME = "Ev\x1b]0;pwned\x07il\x1b[2J"


def test_control_characters_in_an_import_are_removed_and_notes_keep_their_lines(fhome, tmp_path):
    path = _write(tmp_path / "in.csv", "First Name,Last Name,Notes\n"
                                       f'{HOSTILE_NAME},Tab\tBed\x9b31m,"line one\r\nline\x08 two\x07"\n')
    assert_ok(run_cli(fhome, "import", "contacts", str(path)), "1 created")
    conn = sqlite3.connect(fhome / "crm.sqlite3")
    row = conn.execute("SELECT first_name, last_name, notes FROM contacts WHERE last_name LIKE 'Tab%'").fetchone()
    conn.close()
    assert row == ("Ev]0;pwnedil[2J", "Tab Bed31m", "line one\nline two")


def test_search_escapes_control_characters_of_older_data(fhome):
    conn = sqlite3.connect(fhome / "crm.sqlite3")
    conn.execute("UPDATE contacts SET first_name = ?, last_name = 'Oldrow' WHERE rowid = 1", (HOSTILE_NAME,))
    conn.execute("INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild')")
    conn.commit()
    conn.close()
    result = run_cli(fhome, "search", "Oldrow")
    assert_ok(result, "Ev\\x1b]0;pwned\\x07il\\x1b[2J")
    assert "\x1b" not in result.out and "\x07" not in result.out
    as_json = run_cli(fhome, "search", "Oldrow", "--json")
    assert "\x1b" not in as_json.out and json.loads(as_json.out)[0]["title"].startswith(HOSTILE_NAME)


def test_an_error_line_never_carries_a_raw_escape(fhome, tmp_path):
    path = _write(tmp_path / "in.csv", "First Name,E-mail\x1b[2J\x9b\nAnn,a@example.com\n")
    result = run_cli(fhome, "import", "contacts", str(path), "--map", "Nope\x1b]0;x\x07=notes")
    assert_refused(result, "\\x1b]0;x\\x07")
    assert "\x1b" not in result.err and "\x07" not in result.err and "\x9b" not in result.err


# -- CSV injection: defused on export, restored on import ---------------------------------------

HOSTILE_VALUES = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(1,2)", "-2+3", "@SUM(A1)", "'=1+1", "'quoted",
                  "''two", "plain", "O'Brien"]


def test_export_defuses_formulas_and_import_restores_every_value(fhome, tmp_path):
    rows = [f"{value.replace(chr(34), chr(34) * 2)!s}" for value in HOSTILE_VALUES]
    source = "First Name,Last Name,Phone,Mobile,Job Title\n" + "".join(
        f'"{v}",Inject{i},+41 44 668 18 0{i},-,@boss\n'.replace(",-,", ",,") for i, v in enumerate(rows))
    path = _write(tmp_path / "in.csv", source)
    assert_ok(run_cli(fhome, "import", "contacts", str(path)), f"{len(HOSTILE_VALUES)} created")
    stored = _stored(fhome)
    # what went in: a file's own leading ' before a trigger or ' is the escape; other ' are data
    expected = [v[1:] if v[:1] == "'" and v[1:2] in ("=", "'") else v for v in HOSTILE_VALUES]
    assert sorted(r[0] for r in stored) == sorted(expected)
    out = tmp_path / "out.csv"
    assert_ok(run_cli(fhome, "export", "contacts", str(out)))
    with open(out, encoding="utf-8-sig", newline="") as fh:
        exported = [r for r in csv.reader(fh) if r[2].startswith("Inject")]
    for row in exported:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert {r[4] for r in exported} == {f"'+41 44 668 18 0{i}" for i in range(len(HOSTILE_VALUES))}
    assert {r[6] for r in exported} == {"'@boss"}
    # the export, imported into a new home, gives the same records and exports the same cells
    other = tmp_path / "other"
    assert_ok(run_cli(other, "import", "contacts", str(out)), "0 skipped")
    assert sorted(_stored(other)) == sorted(stored)
    again = tmp_path / "again.csv"
    assert_ok(run_cli(other, "export", "contacts", str(again)))
    with open(again, encoding="utf-8-sig", newline="") as fh:
        exported_again = [r for r in csv.reader(fh) if r[2].startswith("Inject")]
    assert sorted(r[1:] for r in exported_again) == sorted(r[1:] for r in exported)


def _stored(home):
    conn = sqlite3.connect(home / "crm.sqlite3")
    try:
        return conn.execute("SELECT first_name, last_name, phone, job_title FROM contacts "
                            "WHERE last_name LIKE 'Inject%' AND deleted_at IS NULL").fetchall()
    finally:
        conn.close()


def test_phone_numbers_beginning_with_plus_survive_export_and_import_exactly(fhome, tmp_path):
    out = tmp_path / "out.csv"
    conn = sqlite3.connect(fhome / "crm.sqlite3")
    before = dict(conn.execute("SELECT id, phone FROM contacts WHERE phone IS NOT NULL").fetchall())
    conn.close()
    assert before and any(p.startswith("+") for p in before.values())
    assert_ok(run_cli(fhome, "export", "contacts", str(out)))
    assert_ok(run_cli(fhome, "import", "contacts", str(out)), "0 created, 0 updated")
    conn = sqlite3.connect(fhome / "crm.sqlite3")
    after = dict(conn.execute("SELECT id, phone FROM contacts WHERE phone IS NOT NULL").fetchall())
    conn.close()
    assert after == before
