"""The import's fast path keeps the rules of the slow one (issue 8, "the bulk path is the fast path")."""

from __future__ import annotations

import sqlite3

import pytest

from crm_desktop.errors import FileFormatError, ValidationError
from crm_desktop.services.importer import import_file
from crm_desktop.storage import bulk_indexes


def _write(path, lines):
    path.write_text("First Name;Last Name;E-mail;Phone;Mobile;Job Title;City\n" + "\n".join(lines) + "\n",
                    encoding="utf-8", newline="")
    return path


BAD = [
    "Ann;Lee;ann@example.com;+49 30 1234567;;Buyer;Berlin",   # fine
    ";;nobody@example.com;;;;",                               # no name
    "Bo;Li;not-an-address;;;;",                               # e-mail
    "Cy;Ng;cy@example.com;12;;;",                             # phone: too few digits
    "Di;Ox;di@example.com;;call me;;",                        # mobile: not a number
    "Ed;Po;ed@example.com;;;" + "x" * 151 + ";",              # job title too long
    "Fay;Qu;f@localhost;;;;",                                 # special-use domain
]


def test_column_wise_validation_refuses_each_row_with_the_message_clean_gives(services, tmp_path):
    summary = import_file(services, "contacts", _write(tmp_path / "bad.csv", BAD), skip_invalid=True)
    assert summary.created == 1
    refused = {r.line: r.reason for r in summary.refused_lines}
    headers = ["first_name", "last_name", "email", "phone", "mobile", "job_title", "city"]
    for line, text in enumerate(BAD[1:], start=3):
        fields = {h: v for h, v in zip(headers, text.split(";"))}
        with services.db.read_session() as session, pytest.raises(ValidationError) as exc:
            services.contacts.clean(session, fields, None)
        assert refused[line] == str(exc.value), line


def test_all_or_nothing_names_the_first_bad_line(services, tmp_path):
    with pytest.raises(FileFormatError, match=r"bad.csv, line 3: .*first or last name is required"):
        import_file(services, "contacts", _write(tmp_path / "bad.csv", BAD))
    assert services.contacts.count() == 0


def _indexes(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return sorted(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                   "AND tbl_name = 'contacts'").fetchall(), key=str)
    finally:
        conn.close()


def test_a_large_import_rebuilds_the_indexes_it_suspended_and_a_cancel_restores_them(services, home, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setattr(bulk_indexes, "MIN_ROWS", 10)
    before = _indexes(home.db_path)
    rows = [f"P{i};Q{i};p{i}@example.com;+49 30 {1000000 + i};;;" for i in range(50)]
    summary = import_file(services, "contacts", _write(tmp_path / "many.csv", rows))
    assert summary.created == 50 and _indexes(home.db_path) == before
    assert services.contacts.search("p7@example.com")[0].last_name == "Q7"
    more = [f"R{i};S{i};r{i}@example.com;;;;" for i in range(60)]
    cancelled = import_file(services, "contacts", _write(tmp_path / "more.csv", more),
                            progress=lambda done, total: done < total)  # cancels after the rows went in
    assert cancelled.cancelled and services.contacts.count() == 50
    assert _indexes(home.db_path) == before


def test_the_compact_outbox_rows_of_a_bulk_insert_read_as_the_row_by_row_path_wrote_them(services, tmp_path,
                                                                                        monkeypatch):
    """A bulk insert writes compact creates (``fields`` JSON null, nothing copied); read back for
    the push they are, for every created record, the mutation the row-by-row path would have
    written (mutation_fields of its Change), in insert order; the SQL reading is byte for byte the
    Python one (``json.dumps`` of the record's wire values)."""
    import json

    from crm_desktop.sync import outbox

    expected: dict[str, tuple] = {}
    used = []
    real = outbox.write_bulk

    def checked(conn, changes):
        expected.update((change.record_id, change) for change in changes)
        done = real(conn, changes)
        used.append(done)
        return done

    monkeypatch.setattr(outbox, "write_bulk", checked)
    path = tmp_path / "people.csv"
    path.write_text(
        "First Name;Last Name;E-mail;Phone;Mobile;Company;Tags;Notes;Job Title\n"
        'Łukasz;Müller;łukasz@bücher.de;+49 30 1234567;;Alpen "Süd" GmbH;VIP, Fair;"line one\nline two\ttab \\ back";\n'
        "Zoë;;zoe@example.com;;+44 20 7946 0958;;;;\n"
        ";O'Brien;;;;Alpen \"Süd\" GmbH;Fair;;Chief 🚀 officer\n"
        "Ann;Lee;;;;;;;\n",
        encoding="utf-8", newline="")
    summary = import_file(services, "contacts", path)
    assert summary.created == 4 and used and all(used)
    conn = sqlite3.connect(services.db.path)
    try:
        stored = dict(conn.execute("SELECT record_id, fields FROM sync_outbox"))
        assert len(expected) == 5  # the company and the four contacts
        assert all(stored[record_id] == "null" for record_id in expected)  # compact: no values copied
        # what the row-by-row path makes of each change when it is sent (the file's new tags exist by then)
        for record_id, change in expected.items():
            op, fields = outbox.mutation_fields(conn, change)
            expected[record_id] = (change.entity, op, fields, 0)
        assert len(next(v for v in expected.values() if "tags" in v[2])[2]["tags"][1]) == 2
        sent = {m.record_id: m for m in outbox.pending_wire(conn, 100)}
        read = {e.record_id: e for e in outbox.pending(conn, 100)}
        for record_id, (entity, op, fields, base) in expected.items():
            assert (sent[record_id].entity, sent[record_id].op, sent[record_id].base_version) == (entity, op, base)
            assert json.loads(sent[record_id].fields_json) == fields, record_id
            assert read[record_id].fields == fields
        order = [m.record_id for m in outbox.pending_wire(conn, 100)]
        assert [r for r in order if r in expected] == list(expected)  # the insert order
        for entity in ("contact", "company"):
            ids = [r for r, want in expected.items() if want[0] == entity]
            by_sql = outbox.compact_fields(conn, entity, ids)
            by_python = {rid: json.dumps({k: [None, v] for k, v in record.items()}, ensure_ascii=False)
                         for rid, record in outbox._records_wire(conn, entity, ids).items()}
            assert by_sql == by_python
    finally:
        conn.close()


def _outbox_rows(services):
    conn = sqlite3.connect(services.db.path)
    try:
        return conn.execute("SELECT record_id, op, fields FROM sync_outbox ORDER BY id").fetchall()
    finally:
        conn.close()


def _import_three(services, tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("First Name;Last Name;E-mail;City;Tags\n"
                    "Ann;Lee;ann@example.com;Berlin;VIP\nBo;Li;bo@example.com;Wien;\nCy;Ng;cy@example.com;Graz;\n",
                    encoding="utf-8", newline="")
    import_file(services, "contacts", path)
    return {c.first_name: c for c in services.contacts.list().items}


def test_an_edit_after_a_bulk_import_fills_in_the_create_with_the_values_it_was_created_with(services, tmp_path):
    """A compact create reads its record when it is pushed; an edit made before that must not leak
    into the create: the create keeps the imported values and the edit goes as an update."""
    import json

    people = _import_three(services, tmp_path)
    ann = people["Ann"]
    services.contacts.update(ann.id, city="München", tags=["VIP", "Fair"])
    services.contacts.update(ann.id, job_title="Buyer")
    rows = [r for r in _outbox_rows(services) if r[0] == ann.id]
    assert [r[1] for r in rows] == ["create", "update", "update", "update"]  # city, tags, job title
    created = json.loads(rows[0][2])
    assert created["city"] == [None, "Berlin"] and created["last_name"] == [None, "Lee"]
    assert "job_title" not in created
    conn = sqlite3.connect(services.db.path)
    try:
        [vip] = conn.execute("SELECT id FROM tags WHERE name = 'VIP'").fetchone()
    finally:
        conn.close()
    assert created["tags"] == [None, [vip]]  # as imported, before "Fair" was added
    assert json.loads(rows[1][2])["city"] == ["Berlin", "München"]
    # the records nobody edited stay compact
    assert [r[2] for r in _outbox_rows(services) if r[0] == people["Bo"].id] == ["null"]


def test_a_bulk_created_record_hard_deleted_before_the_push_leaves_nothing_to_send(services, tmp_path):
    from crm_desktop.storage import models
    from crm_desktop.sync import outbox

    people = _import_three(services, tmp_path)
    with services.unit_of_work() as uow:
        uow.session.delete(uow.session.get(models.Contact, people["Cy"].id))
    assert [r for r in _outbox_rows(services) if r[0] == people["Cy"].id] == []
    services.contacts.delete(people["Bo"].id)  # a tombstone is an ordinary delete: create, then delete
    assert [r[1] for r in _outbox_rows(services) if r[0] == people["Bo"].id] == ["create", "delete"]
    conn = sqlite3.connect(services.db.path)
    try:
        sent = {(m.record_id, m.op): m for m in outbox.pending_wire(conn, 100)}
    finally:
        conn.close()
    assert people["Cy"].id not in {record_id for record_id, _ in sent}
    assert '"last_name": [null, "Li"]' in sent[people["Bo"].id, "create"].fields_json


def _automerge(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT v FROM contacts_fts_config WHERE k = 'automerge'").fetchone()
    finally:
        conn.close()


def test_a_large_search_index_fill_finds_every_row_and_leaves_the_merge_setting_as_it_was(services, home, tmp_path,
                                                                                          monkeypatch):
    """A bulk fill runs with FTS5's automerge off (bulk_fts.QUIET_MERGE_ROWS); the table's own setting
    comes back in the same transaction, also when the import is cancelled after the fill."""
    from crm_desktop.services import bulk_fts

    monkeypatch.setattr(bulk_fts, "QUIET_MERGE_ROWS", 10)
    assert _automerge(home.db_path) is None  # FTS5's default (4)
    rows = [f"P{i};Q{i};p{i}@example.com;+49 30 {1000000 + i};;;" for i in range(40)]
    assert import_file(services, "contacts", _write(tmp_path / "a.csv", rows)).created == 40
    assert _automerge(home.db_path) == (4,)
    assert [c.last_name for c in services.contacts.search("p17@example.com")] == ["Q17"]
    assert [c.last_name for c in services.contacts.search("49301000023")] == ["Q23"]  # the digits-only token
    with services.db.transaction() as scope:  # the user's own setting is kept
        scope.connection.exec_driver_sql("INSERT INTO contacts_fts(contacts_fts, rank) VALUES ('automerge', 8)")
    more = [f"R{i};S{i};r{i}@example.com;;;;" for i in range(30)]
    assert import_file(services, "contacts", _write(tmp_path / "b.csv", more)).created == 30
    assert _automerge(home.db_path) == (8,)
    cancelled = import_file(services, "contacts", _write(tmp_path / "c.csv", [f"T{i};U{i};;;;;" for i in range(30)]),
                            progress=lambda done, total: done < total)  # cancels after the fill
    assert cancelled.cancelled and _automerge(home.db_path) == (8,) and services.contacts.count() == 70


def test_the_apostrophe_scan_answers_as_the_pattern_it_replaced():
    import random
    import re

    from crm_desktop.services.csv_format import cell_may_start_with_quote

    rng = random.Random(7)
    for delimiter in ";,\t":
        pattern = re.compile(f"(?:^|[{re.escape(delimiter)}\r\n])\"?'")
        for _ in range(5000):
            text = "".join(rng.choice("ab'\";,\t\r\n ") for _ in range(rng.randrange(0, 12)))
            assert cell_may_start_with_quote(text, delimiter) == (pattern.search(text) is not None), (text, delimiter)


def test_an_import_command_loads_neither_qt_nor_the_sync_client_nor_pydantic(home, tmp_path):
    """Start-up is part of a whole ``crm-desktop import`` process: it imports what an import needs."""
    import subprocess
    import sys

    path = _write(tmp_path / "one.csv", ["Ann;Lee;ann@example.com;;;;"])
    script = ("import sys; from crm_desktop.cli import main; code = main(sys.argv[1:]); "
              "print(sorted(m for m in ('PySide6', 'pydantic', 'requests', 'keyring', 'vobject', 'pluggy', "
              "'crm_desktop.plugin_host', 'crm_desktop.sync.service', 'crm_desktop.sync.protocol') "
              "if m in sys.modules)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, "--home", str(home.root), "import", "contacts", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 created" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"


def _segmented_file(tmp_path, with_ids=False):
    rows = [f"P{i};Q{i};p{i}@example.com;+49 30 {1000000 + i};;;" for i in range(30)]
    rows[19] = "Again;Person;p2@example.com;;;;"                 # the e-mail of line 4, three segments later
    rows[24] = "Old;Timer;;+49 40 5550000;;;"                    # the phone of a record from before
    rows[26] = "Fresh;Name;x26@example.com;;+49 30 1000005;;"     # a mobile that is line 7's phone
    rows[3] = "Dup;Of;p1@example.com;+49 30 7770000;;;"            # line 5: the e-mail of line 3 ...
    rows[23] = "Third;One;;+49 30 7770000;;;"                       # ... line 25: line 5's phone (so line 3's record)
    path = tmp_path / "seg.csv"
    # an (empty) id column: the file is read whole first instead of as the import goes
    path.write_text("First Name;Last Name;E-mail;Phone;Mobile;Job Title;City;Company" + (";Id" if with_ids else "")
                    + "\n" + "\n".join(r + (";Acme" if i in (1, 28) else ";") + (";" if with_ids else "")
                                       for i, r in enumerate(rows)) + "\n",
                    encoding="utf-8", newline="")
    return path


def _outcomes(summary):
    return [(r.line, r.outcome, r.reason) for r in sorted(summary.lines, key=lambda r: r.line)
            if r.outcome != "created"]


@pytest.mark.parametrize("with_ids", [False, True], ids=["streamed", "read-whole"])
@pytest.mark.parametrize("segment", [4, 7])
def test_a_segmented_import_finds_the_same_duplicates_and_companies_as_one_pass(services, home, tmp_path,
                                                                                  monkeypatch, segment, with_ids):
    from crm_desktop.services import importer

    with services.unit_of_work() as uow:
        old = services.contacts.create_in(uow, {"first_name": "Old", "last_name": "Timer", "phone": "+49 40 5550000"})
        old_id = old.id
    path = _segmented_file(tmp_path, with_ids)
    monkeypatch.setattr(importer, "SEGMENT_ROWS", segment)  # 30 rows: several segments, each validated on a thread
    summary = import_file(services, "contacts", path)
    assert summary.created == 25 and summary.skipped == 5 and summary.companies_created == 1
    assert _outcomes(summary) == [
        (5, "skipped", "duplicate of line 3 of this file (same e-mail 'p1@example.com')"),
        (21, "skipped", "duplicate of line 4 of this file (same e-mail 'p2@example.com')"),
        (25, "skipped", "duplicate of line 5 of this file (same phone number '+49 30 7770000')"),
        (26, "skipped", f"duplicate of existing contact 'Old Timer' ({old_id}): same phone number '+49 40 5550000'"),
        (28, "skipped", "duplicate of line 7 of this file (same phone number '+49 30 1000005')"),
    ]
    skipped = {r.line: r.record_id for r in summary.skipped_lines}
    created = {r.line: r.record_id for r in summary.lines if r.outcome == "created"}
    assert skipped[21] == created[4] and skipped[28] == created[7]
    assert skipped[5] == skipped[25] == created[3]  # a duplicate of a duplicate names the record both repeat
    conn = sqlite3.connect(home.db_path)
    try:
        [(acme, name)] = conn.execute("SELECT id, name FROM companies").fetchall()
        linked = [r.record_id for r in summary.lines if r.line in (3, 30)]
        assert name == "Acme" and [conn.execute("SELECT company_id FROM contacts WHERE id = ?", (i,)).fetchone()[0]
                                   for i in linked] == [acme, acme]
        assert conn.execute("SELECT count(*) FROM contacts_fts").fetchone()[0] == 26  # every row searchable
        new = [r[0] for r in conn.execute("SELECT id FROM contacts WHERE id != ?", (old_id,))]
    finally:
        conn.close()
    # and the same file in one pass says the same
    monkeypatch.setattr(importer, "SEGMENT_ROWS", 10_000)
    with services.unit_of_work() as uow:
        for ident in new:
            services.contacts.delete_in(uow, ident)
    again = import_file(services, "contacts", path)
    assert _outcomes(again) == _outcomes(summary)


def test_a_refusal_in_a_later_segment_writes_nothing_and_stops_the_validating_thread(services, tmp_path,
                                                                                     monkeypatch):
    import threading

    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", 4)
    rows = [f"P{i};Q{i};p{i}@example.com;;;;" for i in range(30)]
    rows[22] = "Bo;Li;not-an-address;;;;"
    with pytest.raises(FileFormatError, match=r"line 24: .*e-mail"):
        import_file(services, "contacts", _write(tmp_path / "bad.csv", rows))
    assert services.contacts.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "import-validate"]


def test_a_cancel_in_a_later_segment_writes_nothing_and_stops_the_validating_thread(services, tmp_path,
                                                                                   monkeypatch):
    import threading

    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", 4)
    rows = [f"P{i};Q{i};p{i}@example.com;;;;" for i in range(30)]
    seen = []

    def progress(done, total):
        seen.append(done)
        return done < 20  # cancel once the rows of several segments are in

    summary = import_file(services, "contacts", _write(tmp_path / "c.csv", rows), progress=progress)
    assert summary.cancelled and max(seen) >= 20
    assert services.contacts.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "import-validate"]


@pytest.mark.parametrize("segment", [4, 10_000], ids=["segments", "one-pass"])
@pytest.mark.parametrize("first,second", [("phone", "mobile"), ("mobile", "phone")])
def test_a_number_repeated_in_the_other_phone_column_on_a_later_line_is_a_duplicate(services, tmp_path, monkeypatch,
                                                                                    segment, first, second):
    """A mobile on line 2 and the same number as the phone of line 3 (or the other way round):
    line 3 repeats line 2 either way (before, only the phone-then-mobile order was found)."""
    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", segment)
    cells = {"phone": 3, "mobile": 4}
    rows = [f"P{i};Q{i};;;;;" for i in range(12)]
    for line_index, column in ((0, first), (1, second)):
        parts = rows[line_index].split(";")
        parts[cells[column]] = "+49 30 1234567"
        rows[line_index] = ";".join(parts)
    summary = import_file(services, "contacts", _write(tmp_path / "two.csv", rows))
    assert summary.created == 11 and summary.skipped == 1
    assert _outcomes(summary) == [(3, "skipped", "duplicate of line 2 of this file (same phone number '+49 30 1234567')")]


def test_a_streamed_import_stops_at_a_quoting_error_in_a_later_segment(services, tmp_path, monkeypatch):
    """The validating thread reads a large file as the import goes: a broken line far down still
    refuses the whole file with its line, writes nothing and leaves no thread behind."""
    import threading

    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", 4)
    rows = [f"P{i};Q{i};p{i}@example.com;;;;" for i in range(30)]
    rows[25] = 'Bo;"Li"x;bo@example.com;;;;'  # text after a closing quote on line 27
    with pytest.raises(FileFormatError, match=r"bad.csv, line 27"):
        import_file(services, "contacts", _write(tmp_path / "bad.csv", rows))
    assert services.contacts.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "import-validate"]


def test_a_streamed_import_reports_progress_up_to_the_rows_it_found(services, tmp_path, monkeypatch):
    """Before a streamed file is read, its size is estimated from its line breaks (here too high:
    blank lines); progress never passes the total, and ends at the rows actually found."""
    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", 4)
    rows = [f"P{i};Q{i};p{i}@example.com;;;;" for i in range(20)] + [""] * 6
    seen = []
    summary = import_file(services, "contacts", _write(tmp_path / "blank.csv", rows),
                          progress=lambda done, total: seen.append((done, total)))
    assert summary.created == 20
    assert all(done <= total for done, total in seen)
    assert seen[0] == (0, 26) and seen[-1] == (20, 20)


def test_a_search_index_fill_that_fails_on_its_thread_fails_the_import_and_writes_nothing(services, tmp_path,
                                                                                         monkeypatch):
    """A segment's search index is filled on a thread of its own while the next segment is prepared:
    its error still reaches the caller (the import is refused whole), and no thread is left."""
    import threading

    from crm_desktop.services import importer
    from crm_desktop.services.bulk_fts import DeferredIndex

    monkeypatch.setattr(importer, "SEGMENT_ROWS", 4)
    fill = DeferredIndex.fill
    calls = []

    def failing_fill(self):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        fill(self)

    monkeypatch.setattr(DeferredIndex, "fill", failing_fill)
    rows = [f"P{i};Q{i};p{i}@example.com;;;;" for i in range(30)]
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        import_file(services, "contacts", _write(tmp_path / "c.csv", rows))
    assert calls[:3] == ["import-index"] * 3
    assert services.contacts.count() == 0
    assert not [t for t in threading.enumerate() if t.name in ("import-validate", "import-index")]


@pytest.mark.parametrize("segment", [4, 10_000], ids=["segments", "one-pass"])
def test_matches_against_a_few_live_records_read_once_are_those_the_joins_find(services, tmp_path, monkeypatch,
                                                                               segment):
    """A table with few live records against the file has their keys read once instead of joined
    segment by segment: the same duplicates, the same records named (the oldest of a key; a phone
    number before another record's mobile), deleted records not matched."""
    from crm_desktop.services import importer

    monkeypatch.setattr(importer, "SEGMENT_ROWS", segment)
    with services.unit_of_work() as uow:
        acme = services.companies.create_in(uow, {"name": "Acme"}).id
        made = {}
        for key, fields in [
            ("a_old", {"first_name": "Ann", "last_name": "Old", "email": "a@example.com"}),
            ("a_new", {"first_name": "Ann", "last_name": "New", "email": "a@example.com"}),
            ("d_mobile", {"first_name": "Dee", "last_name": "Mobile", "mobile": "+49 30 5550001"}),  # older ...
            ("c_phone", {"first_name": "Cy", "last_name": "Phone", "phone": "+49 30 5550001"}),  # ... but a phone
            ("g_mobile", {"first_name": "Gil", "last_name": "Mobile", "mobile": "+49 30 5550002"}),
            ("eve", {"first_name": "Eve", "last_name": "Old", "company_id": acme}),
            ("gone", {"first_name": "Fay", "last_name": "Gone", "email": "f@example.com"}),
        ]:
            made[key] = services.contacts.create_in(uow, fields).id
        services.contacts.delete_in(uow, made["gone"])
    rows = [f"P{i};Q{i};p{i}@example.com;;;;;" for i in range(14)]
    rows[1] = "X1;Y1;a@example.com;;;;;"
    rows[3] = "X3;Y3;;+49 30 5550001;;;;"
    rows[5] = "X5;Y5;;;+49 30 5550001;;;"
    rows[7] = "X7;Y7;;+49 30 5550002;;;;"
    rows[9] = "Eve;Old;;;;;;Acme"
    rows[11] = "Fay;Again;f@example.com;;;;;"
    path = tmp_path / "live.csv"
    path.write_text("First Name;Last Name;E-mail;Phone;Mobile;Job Title;City;Company\n" + "\n".join(rows) + "\n",
                    encoding="utf-8", newline="")
    outcomes = {}
    for way, per_row in (("joins", 0.0), ("read once", 1e9)):
        monkeypatch.setattr(importer, "LIVE_KEYS_PER_ROW", per_row)
        summary = import_file(services, "contacts", path)
        outcomes[way] = _outcomes(summary)
        with services.unit_of_work() as uow:  # the next way finds the same live records
            for r in summary.lines:
                if r.outcome == "created":
                    services.contacts.delete_in(uow, r.record_id)
    assert outcomes["read once"] == outcomes["joins"]
    skipped = {line: reason for line, _, reason in outcomes["joins"]}
    assert sorted(skipped) == [3, 5, 7, 9, 11]
    assert made["a_old"] in skipped[3] and made["c_phone"] in skipped[5] and made["c_phone"] in skipped[7]
    assert made["g_mobile"] in skipped[9] and made["eve"] in skipped[11]
