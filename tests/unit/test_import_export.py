"""Import and export of contacts and companies (docs/import-export.md)."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from crm_desktop.cli import main
from crm_desktop.errors import FileFormatError
from crm_desktop.services.exporter import export_file
from crm_desktop.services.importer import import_file, preview


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding, newline="")
    return path


def snapshot(home):
    """Everything an import could change, to prove that a refused one changed nothing."""
    conn = sqlite3.connect(home.db_path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                for t in ("contacts", "companies", "tags", "contact_tags", "audit_entries")}
    finally:
        conn.close()


PEOPLE = ("First Name;Last Name;E-mail;Mobile;Company;Job Title;Tags\r\n"
          "Anna;Müller;anna@acme.de;+49 170 1234567;Acme GmbH;Buyer;vip, berlin\r\n"
          "Bob;Stone;bob@acme.de;;ACME  gmbh;;\r\n"
          "Chen;Li;chen@li.example;;;CEO;\r\n")


def test_csv_with_bom_semicolons_and_common_headers(services, tmp_path):
    path = write(tmp_path / "people.csv", PEOPLE, encoding="utf-8-sig")
    summary = import_file(services, "contacts", path)
    assert (summary.created, summary.skipped, summary.companies_created) == (3, 0, 1)
    anna = services.contacts.search("anna")[0]
    assert (anna.email, anna.mobile, anna.job_title, anna.company_name, anna.tags) == \
        ("anna@acme.de", "+49 170 1234567", "Buyer", "Acme GmbH", ("berlin", "vip"))
    bob = services.contacts.search("stone")[0]
    assert bob.company_id == anna.company_id  # "ACME  gmbh" is the same company by normalised name
    assert [c.name for c in services.companies.list().items] == ["Acme GmbH"]
    assert [h.title for h in services.search.search("acme")][:1] == ["Acme GmbH"]


def test_comma_csv_without_bom_links_an_existing_company(services, tmp_path):
    acme = services.companies.create(name="Acme GmbH")
    path = write(tmp_path / "p.csv", "Name,Email,Organization\nAnna Maria Müller,anna@acme.de,acme gmbh\n")
    summary = import_file(services, "contact", path)
    assert (summary.created, summary.companies_created) == (1, 0)
    anna = services.contacts.search("anna")[0]
    assert (anna.first_name, anna.last_name, anna.company_id) == ("Anna Maria", "Müller", acme.id)


def test_export_edit_in_a_spreadsheet_and_import_back_updates_only_what_changed(services, tmp_path):
    import_file(services, "contacts", write(tmp_path / "p.csv", PEOPLE))
    out = tmp_path / "export.csv"
    assert export_file(services, "contacts", out) == 3
    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["Id", "First Name", "Last Name", "E-mail"]
    ids = {r[0] for r in rows[1:]}
    assert ids == {c.id for c in services.contacts.list().items}
    for row in rows[1:]:
        if row[1] == "Bob":
            row[6] = "Head of Sales"  # Job Title
            bob_id = row[0]
    with open(out, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    summary = import_file(services, "contacts", out)
    assert (summary.created, summary.updated, summary.unchanged, summary.skipped) == (0, 1, 2, 0)
    assert services.contacts.get(bob_id).job_title == "Head of Sales"
    history = services.audit.for_record("contact", bob_id)
    assert history[0].action == "update" and history[0].changes == {"job_title": [None, "Head of Sales"]}


def test_unknown_id_creates_the_record_under_that_id_and_a_repeated_id_is_refused(services, tmp_path, home):
    ident = "01900000-0000-7000-8000-000000000001"
    summary = import_file(services, "contacts", write(tmp_path / "a.csv", f"Id,Last Name\n{ident},Lee\n"))
    assert summary.created == 1 and services.contacts.get(ident).last_name == "Lee"
    before = snapshot(home)
    with pytest.raises(FileFormatError, match=r"b.csv, line 3: id .* is on line 2 already"):
        import_file(services, "contacts", write(tmp_path / "b.csv", f"Id,Last Name\n{ident},Lee\n{ident},Li\n"))
    assert snapshot(home) == before


@pytest.mark.parametrize("text, line, reason", [
    ('First Name,E-mail\nAnn,ann@x.de\n"Bo,bo@x.de\n', 3, "malformed CSV"),
    ("First Name,E-mail\nAnn,ann@x.de\nBo,bo@x.de,extra\n", 3, "has 3 cells but the header has 2 columns"),
    ("First Name,E-mail\nAnn,ann@x.de\nBo,bo(at)x.de\n", 3, "contact.email: 'bo(at)x.de' is invalid"),
    ("First Name,E-mail\nAnn,ann@x.de\n,nobody@x.de\n", 3, "a first or last name is required"),
    ("Id,First Name\nnot-an-id,Ann\n", 2, "id 'not-an-id' is not a record id"),
    ("First Name,First Name\nAnn,Ann\n", 1, "appears twice in the header"),
])
def test_a_malformed_file_is_refused_with_line_and_reason_and_changes_nothing(services, home, tmp_path, text,
                                                                               line, reason):
    services.contacts.create(first_name="Existing", last_name="One")
    before = snapshot(home)
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(FileFormatError) as info:
        import_file(services, "contacts", path)
    assert info.value.line == line and reason in str(info.value) and "bad.csv" in str(info.value)
    assert snapshot(home) == before


def test_a_file_that_is_not_utf8_names_the_line(services, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("Last Name\nLee\nM\u00fcller\n".encode("latin-1"))
    with pytest.raises(FileFormatError, match="line 3: is not UTF-8"):
        import_file(services, "contacts", path)


def test_duplicates_are_skipped_and_say_which_record_and_why(services, tmp_path):
    services.phone_region = "DE"  # "0170 ..." below is a German number
    acme = services.companies.create(name="Acme")
    anna = services.contacts.create(first_name="Anna", last_name="Müller", email="Anna@Acme.de")
    bob = services.contacts.create(first_name="Bob", last_name="Stone", mobile="+49 170 1234567")
    carl = services.contacts.create(first_name="Carl", last_name="Weiß", company_id=acme.id)
    text = ("Id,First Name,Last Name,E-mail,Phone,Company\n"
            ",Annette,M,anna@acme.DE,,\n"              # same e-mail, other case
            ",Robert,Stone,,0170 1234567,\n"           # same number, national spelling, in phone not mobile
            ",carl,WEISS,,,ACME\n"                     # same name in the same company
            ",Carl,Weiß,,,Other Corp\n"                # same name, other company: not a duplicate
            ",Dora,New,dora@x.de,,\n"
            ",Dora,Again,DORA@x.de,,\n"                # repeats line 6 of the file
            f"{anna.id},Anna,Müller,anna@acme.de,,\n")  # carries an id: updates, never skipped
    summary = import_file(services, "contacts", write(tmp_path / "d.csv", text))
    assert (summary.created, summary.skipped, summary.updated) == (2, 4, 1)  # the e-mail's case changed
    reasons = {r.line: (r.record_id, r.reason) for r in summary.skipped_lines}
    assert reasons[2][0] == anna.id and "'Anna Müller'" in reasons[2][1] and "same e-mail" in reasons[2][1]
    assert reasons[3][0] == bob.id and "same phone number" in reasons[3][1]
    assert reasons[4][0] == carl.id and "same name in the same company" in reasons[4][1]
    assert "duplicate of line 6 of this file" in reasons[7][1]
    assert services.contacts.get(anna.id).email == "anna@acme.de"


def test_companies_import_skips_same_normalised_name(services, tmp_path):
    services.companies.create(name="Müller Bau GmbH")
    summary = import_file(services, "companies", write(
        tmp_path / "c.csv", "Company;Website;City\nMUELLER;x.de;Köln\nmüller  bau gmbh;mb.de;Bonn\nNeu AG;neu.de;Ulm\n"))
    assert (summary.created, summary.skipped) == (2, 1)
    assert "same name" in summary.skipped_lines[0].reason and summary.skipped_lines[0].line == 3
    neu = services.companies.search("neu")[0]
    assert (neu.website, neu.city) == ("neu.de", "Ulm")


def test_cancel_from_the_progress_callback_leaves_the_database_as_it_was(services, home, tmp_path):
    rows = "".join(f"Person{i},p{i}@x.de,Firm {i % 7}\n" for i in range(3000))
    path = write(tmp_path / "many.csv", "Last Name,E-mail,Company\n" + rows)
    before = snapshot(home)
    calls = []

    def progress(done, total):
        calls.append((done, total))
        return done < 2000  # cancel after 2000 rows are written inside the transaction

    summary = import_file(services, "contacts", path, progress=progress)
    assert summary.cancelled and summary.created == 0
    assert calls[0] == (0, 3000) and calls[-1][0] >= 2000
    assert snapshot(home) == before
    assert services.contacts.search("person1") == []


def test_every_created_record_is_audited_and_listeners_see_each_change(services, tmp_path):
    seen, calls = [], []
    services.change_listeners.append(lambda session, changes, actor: (
        calls.append(len(changes)), seen.extend((c.entity, c.op) for c in changes)))
    import_file(services, "contacts", write(tmp_path / "p.csv", PEOPLE))
    # the tags the file names are new records too: sync needs them before the links
    assert sorted(seen) == [("company", "create")] + [("contact", "create")] * 3 + [("tag", "create")] * 2
    assert len(calls) <= 3  # batches (companies, contacts, tags), not one call per record
    # one entry per bulk insert, naming the file and how many records it created
    entries = services.audit.recent(action="import")
    assert sorted((e.entity, e.changes["records"], e.changes["file"]) for e in entries) == [
        ("company", 1, "p.csv"), ("contact", 3, "p.csv")]
    anna = services.contacts.search("anna")[0]
    [entry] = services.audit.for_record("contact", anna.id)
    assert entry.action == "import" and entry.record_id == anna.id and entry.actor_name == services.actor.name
    assert services.audit.created("contact", anna.id) == entry


def test_preview_guesses_the_mapping_and_parses_the_first_rows(services, tmp_path):
    path = write(tmp_path / "p.csv", "Vorname;Surname;Mail;Shoe size\nAnna;Lee;a@x.de;38\nBo;Li;b@x.de;44\n")
    p = preview(path, "contacts", rows=1)
    assert p.format == "csv" and p.total_rows == 2
    assert p.mapping == {"Vorname": "first_name", "Surname": "last_name", "Mail": "email", "Shoe size": None}
    assert p.rows == [(2, {"first_name": "Anna", "last_name": "Lee", "email": "a@x.de"})]
    custom = preview(path, "contacts", mapping={"Shoe size": "notes", "Mail": None})
    assert custom.rows[0][1] == {"first_name": "Anna", "last_name": "Lee", "notes": "38"}


def test_a_mapping_override_is_used_and_a_bad_one_is_refused(services, tmp_path):
    path = write(tmp_path / "p.csv", "A,B\nLee,x@y.de\n")
    with pytest.raises(FileFormatError, match="no column matches a contact field"):
        import_file(services, "contacts", path)
    with pytest.raises(FileFormatError, match="unknown field 'shoe'"):
        import_file(services, "contacts", path, mapping={"A": "shoe"})
    with pytest.raises(FileFormatError, match="column 'C', which the file does not have"):
        import_file(services, "contacts", path, mapping={"C": "email"})
    summary = import_file(services, "contacts", path, mapping={"A": "last_name", "B": "email"})
    assert summary.created == 1 and services.contacts.search("lee")[0].email == "x@y.de"


VCARDS = """BEGIN:VCARD\r
VERSION:3.0\r
N:Müller;Anna;;;\r
FN:Anna Müller\r
EMAIL;TYPE=INTERNET:anna@acme.de\r
TEL;TYPE=CELL:+49 170 1234567\r
TEL;TYPE=WORK:+49 30 1234567\r
ORG:Acme GmbH;Sales\r
TITLE:Buyer\r
ADR;TYPE=WORK:;;Hauptstr. 1;Berlin;;10115;Germany\r
CATEGORIES:vip\r
NOTE:Met at the fair\\, twice\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Bob Stone\r
EMAIL:bob@stone.example\r
TEL;VALUE=uri;TYPE="cell,voice":tel:+1-555-0100\r
END:VCARD\r
"""


def test_vcard_3_and_4_import(services, tmp_path):
    summary = import_file(services, "contacts", write(tmp_path / "people.vcf", VCARDS))
    assert (summary.format, summary.created, summary.companies_created) == ("vcard", 2, 1)
    anna = services.contacts.search("anna")[0]
    assert (anna.mobile, anna.phone, anna.company_name, anna.job_title, anna.street, anna.city, anna.notes,
            anna.tags) == ("+49 170 1234567", "+49 30 1234567", "Acme GmbH", "Buyer", "Hauptstr. 1", "Berlin",
                           "Met at the fair, twice", ("vip",))
    bob = services.contacts.search("stone")[0]
    assert (bob.first_name, bob.last_name, bob.mobile) == ("Bob", "Stone", "+1-555-0100")


def test_vcard_export_round_trip_and_malformed_card_line(services, home, tmp_path):
    import_file(services, "contacts", write(tmp_path / "people.vcf", VCARDS))
    out = tmp_path / "out.vcf"
    assert export_file(services, "contacts", out, fmt="vcard") == 2
    text = out.read_text(encoding="utf-8")
    assert text.count("X-CRM-ID:") == 2
    summary = import_file(services, "contacts", out)
    assert (summary.created, summary.unchanged) == (0, 2)
    before = snapshot(home)
    bad = write(tmp_path / "bad.vcf", VCARDS.replace("TITLE:Buyer", "this is not a vcard line"))
    with pytest.raises(FileFormatError, match=r"bad.vcf, line 9: is not a vCard line"):
        import_file(services, "contacts", bad)
    unterminated = write(tmp_path / "open.vcf", VCARDS.rsplit("END:VCARD", 1)[0])
    with pytest.raises(FileFormatError, match=r"line 14 has no END:VCARD"):
        import_file(services, "contacts", unterminated)
    assert snapshot(home) == before


def test_companies_export_and_reimport(services, tmp_path):
    services.companies.create(name="Acme", website="acme.example", tags=["key account"])
    out = tmp_path / "companies.csv"
    assert export_file(services, "companies", out) == 1
    assert "key account" in out.read_text(encoding="utf-8-sig")
    assert import_file(services, "companies", out).unchanged == 1


def test_cli_import_json_and_export(home, tmp_path, capsys):
    path = write(tmp_path / "p.csv", PEOPLE + "Anne;M;ANNA@acme.de;;;;\r\n")
    assert main(["--home", str(home.root), "import", "contacts", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["created"], result["skipped"]) == (3, 1)
    assert result["skipped_lines"][0]["line"] == 5 and "same e-mail" in result["skipped_lines"][0]["reason"]
    out = tmp_path / "out.vcf"
    assert main(["--home", str(home.root), "export", "contacts", str(out)]) == 0
    assert "exported 3 contacts" in capsys.readouterr().out and out.read_text().count("BEGIN:VCARD") == 3


def test_cli_import_progress_json_is_one_object_a_line(home, tmp_path, capsys):
    """What the import dialog reads from its child process: ticks, then the summary, nothing else."""
    from crm_desktop.services.importer import ImportSummary

    path = write(tmp_path / "p.csv", PEOPLE + "Anne;M;ANNA@acme.de;;;;\r\n")
    assert main(["--home", str(home.root), "import", "contacts", str(path), "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ticks, last = lines[:-1], lines[-1]
    assert ticks and all(set(t) == {"done", "total"} for t in ticks) and ticks[-1] == {"done": 4, "total": 4}
    summary = ImportSummary.from_dict(last["summary"])
    assert (summary.created, summary.skipped) == (3, 1)
    assert summary.skipped_lines[0].line == 5 and "same e-mail" in summary.skipped_lines[0].reason
    assert summary.to_dict() == last["summary"]


def test_cli_import_progress_json_error_is_one_json_line_and_exit_2(home, tmp_path, capsys):
    bad = write(tmp_path / "bad.csv", "Last Name,E-mail\nLee,a@x.de\nLi,b@x.de,extra\n")
    assert main(["--home", str(home.root), "import", "contacts", str(bad), "--progress-json"]) == 2
    captured = capsys.readouterr()
    [line] = [json.loads(line) for line in captured.out.splitlines() if "error" in line]
    assert set(line) == {"error"} and "bad.csv, line 3" in line["error"] and "\n" not in line["error"]
    assert captured.err.startswith("error: ")


def test_cli_import_map_column_with_equals_sign(home, tmp_path, capsys):
    path = write(tmp_path / "eq.csv", "Name=Last,E-mail\nLee,a@x.de\n")
    assert main(["--home", str(home.root), "import", "contacts", str(path), "--map", "Name=Last=last_name",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 1


@pytest.mark.parametrize("args, message", [
    (["import", "contacts", "{tmp}/missing.csv"], "missing.csv: no such file"),
    (["import", "contacts", "{tmp}/p.csv", "--format", "xls"], "invalid choice: 'xls'"),
    (["import", "people", "{tmp}/p.csv"], "invalid choice: 'people'"),
    (["import", "contacts", "{tmp}/bad.csv"], "bad.csv, line 3: has 3 cells"),
    (["export", "contacts", "{tmp}/nowhere/x.csv"], "does not exist"),
])
def test_cli_bad_input_is_one_line_and_exit_2(home, tmp_path, capsys, args, message):
    write(tmp_path / "p.csv", PEOPLE)
    write(tmp_path / "bad.csv", "Last Name,E-mail\nLee,a@x.de\nLi,b@x.de,extra\n")
    code = main(["--home", str(home.root), *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_tags_with_control_characters_import_under_their_clean_name(services, tmp_path):
    """A Tags cell with a stray control character (a BEL pasted from a terminal) once crashed the
    whole import with a KeyError: the tag was created under its cleaned name and looked up raw."""
    path = write(tmp_path / "tagged.csv", "First Name,Last Name,Tags\nAnn,Lee,vip\x07; Kunden\nBo,Li,\x07\n")
    summary = import_file(services, "contacts", path)
    assert summary.created == 2
    by_name = {c.last_name: c for c in services.contacts.list().items}
    assert by_name["Lee"].tags == ("Kunden", "vip")
    assert by_name["Li"].tags == ()
    assert sorted(t.name for t in services.tags.all()) == ["Kunden", "vip"]
