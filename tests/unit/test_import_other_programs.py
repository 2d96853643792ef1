"""Files other programs write import with e-mail, phones, company and title, and what is not
imported is named; one bad row can be set aside instead of sinking the file."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from crm_desktop.cli import main
from crm_desktop.errors import FileFormatError
from crm_desktop.services.importer import import_file, preview

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "import"


@pytest.fixture
def fixture_file(tmp_path):
    def copy(name: str) -> Path:
        return Path(shutil.copy(FIXTURES / name, tmp_path / name))
    return copy


# file, (first, last, email, phone, mobile, company, job title), a column that must be named as not imported
CASES = [
    ("google_contacts.csv", ("Greta", "Gärtner", "greta@gartenbau-sued.example", "+49 89 1234567",
                             "+49 171 2345678", "Gartenbau Süd GmbH", "Head of Purchasing"), "Birthday"),
    ("google_contacts_old.csv", ("Otto", "Olsen", "otto@olsen-shipping.example", "+45 33 12 34 56",
                                 "+45 20 12 34 56", "Olsen Shipping A/S", "Fleet Manager"), "Occupation"),
    ("outlook.csv", ("Olivia", "O'Brien", "olivia.obrien@harbor.example", "+353 1 234 5678", "+353 87 123 4567",
                     "Harbor Logistics Ltd", "Buyer"), "Department"),
    ("hubspot.csv", ("Hana", "Hubert", "hana.hubert@prime-foods.example", "+43 1 5123456", "+43 664 1234567",
                     "Prime Foods GmbH", "Category Manager"), "Record ID"),
    ("salesforce.csv", ("Sam", "Sørensen", "sam.sorensen@nordic-freight.example", "+46 8 123 456 78",
                        "+46 70 123 45 67", "Nordic Freight AB", "VP Operations"), "Contact ID"),
    ("pipedrive.csv", ("Paula", "Pérez", "paula@iberia-trading.example", "+34 91 123 45 67", "+34 612 345 678",
                       "Iberia Trading S.L.", "Directora Comercial"), "Person - Open deals"),
    ("excel_semicolon_bom.csv", ("Jürgen", "Weiß", "juergen.weiss@weiss-bau.example", "+49 221 123456",
                                 "+49 151 2345678", "Weiß Bau GmbH & Co. KG", "Geschäftsführer"), "Geburtstag"),
    ("apple_icloud.vcf", ("Åsa", "Åberg", "asa.aberg@scandi-design.example", "+46 8 555 123 45",
                          "+46 70 555 12 34", "Scandi Design AB", "Key Account Manager"), "BDAY"),
]


@pytest.mark.parametrize("name, expected, unmapped", CASES, ids=[c[0] for c in CASES])
def test_a_contact_from_another_program_arrives_whole(services, fixture_file, name, expected, unmapped):
    path = fixture_file(name)
    summary = import_file(services, "contacts", path)
    assert (summary.created, summary.skipped, summary.refused) == (1, 0, 0)
    [contact] = services.contacts.list().items
    got = (contact.first_name, contact.last_name, contact.email, contact.phone, contact.mobile,
           contact.company_name, contact.job_title)
    assert got == expected
    assert any(u.startswith(unmapped) for u in summary.unmapped), summary.unmapped
    assert any(u.startswith(unmapped) for u in preview(path, "contacts").unmapped)


def test_google_labels_become_tags_without_the_system_groups(services, fixture_file):
    import_file(services, "contacts", fixture_file("google_contacts.csv"))
    [contact] = services.contacts.list().items
    assert contact.tags == ("Kunden",)
    assert (contact.street, contact.city, contact.postal_code) == ("Lindenallee 3", "München", "80331")


def test_outlook_title_is_not_taken_for_the_job_title(services, fixture_file):
    p = preview(fixture_file("outlook.csv"), "contacts")
    assert p.mapping["Job Title"] == "job_title" and p.mapping["Title"] is None
    assert "Title" in p.unmapped


def test_vcard_second_email_is_named_as_not_imported(services, fixture_file):
    summary = import_file(services, "contacts", fixture_file("apple_icloud.vcf"))
    assert "EMAIL" in summary.unmapped  # the home address: a contact has one e-mail field


def test_the_summary_on_the_command_line_names_unmapped_columns(home, fixture_file, capsys):
    path = fixture_file("hubspot.csv")
    assert main(["--home", str(home.root), "import", "contacts", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not imported" in out and "Record ID" in out and "Lifecycle Stage" in out


BAD_ROWS = ("First Name,Last Name,E-mail,Phone\n"
            "Anna,Lee,anna@lee.example,+49 30 1234567\n"
            "Bob,,bob@@lee.example,\n"             # bad e-mail
            ",,,\n"                                  # no name at all: blank line, ignored
            "Carl,Coe,carl@coe.example,not a number\n"
            "Dora,Day,dora@day.example,\n")


def test_one_bad_row_refuses_the_whole_file_by_default(services, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(BAD_ROWS, encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"people.csv, line 3: .*e-mail"):
        import_file(services, "contacts", path)
    assert services.contacts.count() == 0
    assert not list(tmp_path.glob("*.refused*.csv"))


def test_skip_invalid_imports_the_rest_and_writes_the_refused_rows_with_the_reason(services, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(BAD_ROWS, encoding="utf-8")
    summary = import_file(services, "contacts", path, skip_invalid=True)
    assert (summary.created, summary.refused) == (2, 2)
    assert sorted(c.first_name for c in services.contacts.list().items) == ["Anna", "Dora"]
    refused = Path(summary.refused_path)
    assert refused == tmp_path / "people.refused.csv"
    with open(refused, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["First Name"], r["Line"]) for r in rows] == [("Bob", "3"), ("Carl", "5")]
    assert "e-mail" in rows[0]["Refused Because"] and "phone" in rows[1]["Refused Because"]
    # corrected and imported again: the helper columns are named as not imported, nothing else is lost
    again = import_file(services, "contacts", refused, skip_invalid=True)
    assert again.refused == 2 and set(again.unmapped) == {"Line", "Refused Because"}


def test_the_refused_rows_file_never_replaces_an_existing_one(services, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(BAD_ROWS, encoding="utf-8")
    (tmp_path / "people.refused.csv").write_text("mine, keep me\n", encoding="utf-8")
    summary = import_file(services, "contacts", path, skip_invalid=True)
    assert Path(summary.refused_path).name == "people.refused-2.csv"
    assert (tmp_path / "people.refused.csv").read_text(encoding="utf-8") == "mine, keep me\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_skip_invalid(home, tmp_path, capsys):
    path = tmp_path / "people.csv"
    path.write_text(BAD_ROWS + "Eve,Ever,eve@ever.example,,extra cell\n", encoding="utf-8")
    assert main(["--home", str(home.root), "import", "contacts", str(path)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert main(["--home", str(home.root), "import", "contacts", str(path), "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "2 created" in out and "3 refused" in out and "people.refused.csv" in out
    assert "line 7: refused, has 5 cells" in out


def test_numbers_of_different_countries_are_not_duplicates_but_spellings_of_one_are(services, tmp_path):
    services.phone_region = "DE"
    services.contacts.create(first_name="Berlin", last_name="Office", phone="+49 30 1234567")
    path = tmp_path / "p.csv"
    path.write_text("Name,Phone\n"
                    "Vienna Office,+43 30 1234567\n"        # same digits, Austria: a different number
                    "Same Berlin,030 / 123 45 67\n"         # the Berlin number in national spelling
                    "New York,+1 212 555 0100\n"
                    "London,+44 212 555 0100\n", encoding="utf-8")  # same last digits, another country
    summary = import_file(services, "contacts", path)
    assert (summary.created, summary.skipped) == (3, 1)
    assert summary.skipped_lines[0].line == 3 and "same phone number" in summary.skipped_lines[0].reason
