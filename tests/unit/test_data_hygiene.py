"""Control characters in and out, the CSV formula rule, and the limits of issue 9's data family
(docs/reliability.md, docs/import-export.md)."""

from __future__ import annotations

import csv
import io

import pytest

from crm_desktop.cli.terminal import for_terminal, json_for_terminal
from crm_desktop.domain.validation import check_email, check_phone, clean_text, clean_texts, strip_controls
from crm_desktop.errors import ValidationError
from crm_desktop.services.csv_format import CsvReader, defuse_cell, restore_cell, write_csv

ESCAPES = "\x1b]0;title\x07\x1b[2J\x9b31m\x00\x7f"


@pytest.mark.parametrize("field, value, expected", [
    ("first_name", "Ev\x1b[2Jil", "Ev[2Jil"),
    ("first_name", "Ann\x00", "Ann"),
    ("last_name", "Lee\tand\r\nSons", "Lee and Sons"),
    ("city", "Bern\x85Mitte", "Bern Mitte"),
    ("job_title", "\x9b31mBoss", "31mBoss"),
    ("notes", "one\r\ntwo\rthree\n\tfour\x07\x00", "one\ntwo\nthree\n\tfour"),
    ("body", "a\x1b\nb", "a\nb"),
    ("first_name", "\x1b\x07", None),
])
def test_free_text_loses_its_control_characters(field, value, expected):
    assert clean_text(value, field) == expected
    assert clean_texts([value], 1000, field)[0] == [expected]


@pytest.mark.parametrize("check, field, value", [
    (check_email, "email", "ann\x1b@example.com"),
    (check_phone, "phone", "+41\t44 668 18 00"),
    (check_phone, "mobile", "+41 44\x00 668"),
    (clean_text, "company_id", "01a2\x07"),
    (clean_text, "id", "01a2\x1b"),
])
def test_identifiers_and_structured_values_with_control_characters_are_refused(check, field, value):
    with pytest.raises(ValidationError, match="must not contain control characters"):
        check(value, field)


def test_column_cleaning_refuses_ids_with_control_characters_like_clean_text():
    assert clean_texts(["ok", "b\x00d"], 36, "owner_id") == (["ok", "b\x00d"], [1])


def test_ordinary_values_pass_unchanged():
    assert check_phone("+41 44 668 18 00") == "+41 44 668 18 00"
    assert check_phone("+41\u00a044 668 18 00 ext. 12") == "+41\u00a044 668 18 00 ext. 12"
    assert clean_text("Zoë  O'Brien", "last_name") == "Zoë  O'Brien"
    assert strip_controls("plain", "notes") == "plain"


def test_every_write_path_cleans_services_and_plugins(services):
    contact = services.contacts.create(first_name="Ev\x1b]0;x\x07il", last_name="Ter\x00m", notes="a\r\nb\x1b")
    assert (contact.first_name, contact.last_name, contact.notes) == ("Ev]0;xil", "Term", "a\nb")
    updated = services.contacts.update(contact.id, job_title="\x9bBoss\x07")
    assert updated.job_title == "Boss"
    company = services.companies.create(name="Acme\x1b[2J")
    assert company.name == "Acme[2J"
    with pytest.raises(ValidationError, match="control characters"):
        services.contacts.create(first_name="X", email="x\x07@example.com")


def test_a_sync_pull_cleans_pulled_text(services):
    from crm_desktop.domain.ids import uuid7
    from crm_desktop.sync.applier import PullApplier
    from crm_desktop.sync.protocol import PulledChange, PullResponse

    record_id = uuid7()
    record = {"first_name": "Pu\x1b[2Jlled", "last_name": "Row\x07", "notes": "x\r\ny\x00"}
    page = PullResponse(changes=[PulledChange(kind="upsert", entity="contact", id=record_id, version=3,
                                              record=record)], cursor="1", has_more=False)
    PullApplier(services.db).apply(page)
    pulled = services.contacts.get(record_id)
    assert (pulled.first_name, pulled.last_name, pulled.notes) == ("Pu[2Jlled", "Row", "x\ny")


def test_terminal_output_shows_escapes_instead_of_running_them():
    assert for_terminal("Ev" + ESCAPES) == "Ev\\x1b]0;title\\x07\\x1b[2J\\x9b31m\\x00\\x7f"
    assert for_terminal("a\u202eb\u2066c") == "a\\u202eb\\u2066c"
    assert for_terminal("Zoë Müller – 東京") == "Zoë Müller – 東京"
    assert json_for_terminal('{\n  "t": "a\x9bb\u202e"\n}') == '{\n  "t": "a\\u009bb\\u202e"\n}'


# -- CSV formulas --------------------------------------------------------------------------------

ROUND_TRIP = ["=1+1", "+41 44 668 18 00", "-3", "@SUM(A1)", "\tx", "\rx", "'", "''", "'=x", "''=x", "'hello",
              "O'Brien", "plain", "", "=", "+", "a=b", " =x", "'+41 44"]


@pytest.mark.parametrize("value", ROUND_TRIP)
def test_defuse_and_restore_are_inverse(value):
    cell = defuse_cell(value)
    assert restore_cell(cell) == value
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_defused_cells_are_what_owasp_asks_for():
    assert defuse_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert defuse_cell("+41 44 668 18 00") == "'+41 44 668 18 00"
    assert defuse_cell("'quoted") == "''quoted"
    assert defuse_cell("Müller") == "Müller"


def test_a_real_leading_apostrophe_from_another_program_is_kept():
    assert restore_cell("'hello") == "'hello"
    assert restore_cell("''hello") == "'hello"  # the documented escape of a leading '


def test_written_and_read_back_through_the_csv_reader(tmp_path):
    fields = ("first_name", "last_name", "phone", "notes")
    rows = [dict(zip(fields, (v, f"Row{i}", "+41 44 668 18 00", v))) for i, v in enumerate(ROUND_TRIP)]
    buffer = io.StringIO()
    write_csv(buffer, fields, rows)
    path = tmp_path / "out.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    for cells in list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))[1:]:
        assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    read = [values for _line, values in CsvReader(path)]
    assert [(r["First Name"], r["Phone"], r["Notes"]) for r in read] == [
        (v, "+41 44 668 18 00", v) for v in ROUND_TRIP]


def test_search_limit_of_the_command_line_matches_the_service():
    from crm_desktop.cli.data_commands import SEARCH_MAX_LIMIT
    from crm_desktop.services.search import MAX_LIMIT

    assert SEARCH_MAX_LIMIT == MAX_LIMIT
