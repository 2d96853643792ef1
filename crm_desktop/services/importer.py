"""Import contacts and companies from CSV or vCard files (docs/import-export.md).

One import is one write transaction (one :class:`UnitOfWork`): a malformed file,
an invalid value or a cancel rolls everything back, so the database is either
unchanged or has the whole file. With ``skip_invalid`` the rows that break a
rule are left out instead and written, with the reason, to ``<name>.refused.csv``
beside the file (:mod:`crm_desktop.services.refused_rows`); the rest is imported.

The work is set-based (see :class:`_Run`): rows are validated by the services'
own rules, their duplicate keys go into a temporary table and a few joins find
the duplicates and the companies to link; new records go in with bulk inserts,
the search index with one ``INSERT ... SELECT``; storage stamps the sync columns and
writes one audit entry and one listener :class:`Change` per record
(``storage.changes.insert_synced_rows``). Records named by an ``id`` column are updated through
the service's ``update_in``, so only the fields that differ change and are audited.

Rows without an id that match an existing record (same e-mail, same phone or
mobile in E.164, or the same normalised name in the same company) or an earlier
line of the file are skipped and reported with the record or line they match.
Columns that no field takes are listed in the summary (``unmapped``).

Usage::

    summary = import_file(services, "contact", Path("people.csv"), progress=lambda done, total: True)
    print(summary.created, summary.skipped_lines)
"""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from crm_desktop.domain.ids import uuid7
from crm_desktop.domain.validation import normalize_name
from crm_desktop.errors import FileFormatError, ValidationError
from crm_desktop.services.bulk_fts import DeferredIndex
from crm_desktop.services.csv_format import (
    EXPORT_HEADERS, FIELDS, MOBILE_LABEL_WORDS, TAG_SEPARATOR, CsvReader, check_mapping, guess_mapping,
    phone_label_columns,
)
from crm_desktop.services.refused_rows import RefusedRow, write_refused
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.services.vcard_format import VCardReader
from crm_desktop.storage import models
from crm_desktop.storage.changes import insert_synced_rows

log = logging.getLogger(__name__)

#: progress(done_rows, total_rows) -> False to cancel (None or True go on)
ProgressCallback = Callable[[int, int], "bool | None"]

FORMATS = ("csv", "vcard")
ENTITIES = ("contact", "company")
CHUNK = 5000
PROGRESS_EVERY = 500
_TEXT_FIELDS = {
    "contact": ("first_name", "last_name", "email", "phone", "mobile", "job_title", "street", "city",
                "postal_code", "country", "notes"),
    "company": ("name", "website", "industry", "email", "phone", "street", "city", "postal_code",
                "country", "notes"),
}


@dataclass(frozen=True)
class LineResult:
    """What happened to one row: ``created``, ``updated``, ``unchanged``, ``skipped`` (a duplicate,
    with why) or ``refused`` (it broke a rule; only with ``skip_invalid``)."""

    line: int
    outcome: str
    record_id: str | None = None
    reason: str | None = None


@dataclass
class ImportSummary:
    """The result of an import, for the summary dialog and ``import --json``."""

    entity: str
    path: str
    format: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    refused: int = 0
    companies_created: int = 0
    cancelled: bool = False
    lines: list[LineResult] = field(default_factory=list)
    #: columns (CSV) or vCard properties whose data was not imported, so nothing is dropped unnoticed
    unmapped: list[str] = field(default_factory=list)
    #: where the refused rows were written (``skip_invalid``), or None
    refused_path: str | None = None

    @property
    def skipped_lines(self) -> list[LineResult]:
        return [r for r in self.lines if r.outcome == "skipped"]

    @property
    def refused_lines(self) -> list[LineResult]:
        return [r for r in self.lines if r.outcome == "refused"]

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "path": self.path, "format": self.format, "cancelled": self.cancelled,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": self.skipped, "refused": self.refused, "companies_created": self.companies_created,
                "unmapped": list(self.unmapped), "refused_path": self.refused_path,
                "skipped_lines": [{"line": r.line, "record_id": r.record_id, "reason": r.reason}
                                  for r in self.skipped_lines],
                "refused_lines": [{"line": r.line, "reason": r.reason} for r in self.refused_lines]}


@dataclass(frozen=True)
class ImportPreview:
    """What the column-mapping dialog shows: the guessed mapping and the first rows as fields."""

    format: str
    headers: list[str]
    mapping: dict[str, str | None]
    fields: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]
    total_rows: int
    #: columns (CSV) or vCard properties that will not be imported
    unmapped: list[str] = field(default_factory=list)


class _Cancelled(Exception):
    pass


def normalize_entity(name: str) -> str:
    """``contacts``/``contact`` -> ``contact``; anything else is a clear error."""
    entity = {"contacts": "contact", "companies": "company"}.get(name, name)
    if entity not in ENTITIES:
        raise ValidationError("entity", name, "must be contacts or companies")
    return entity


def detect_format(path: Path, fmt: str | None) -> str:
    """The explicit format, else by extension (.vcf/.vcard), else by content."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValidationError("format", fmt, f"must be one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".vcf", ".vcard"):
        return "vcard"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \r\n\t").upper()
    return "vcard" if head.startswith(b"BEGIN:VCARD") else "csv"


def _reader(path: Path, entity: str, fmt: str):
    if not path.is_file():
        raise FileFormatError(str(path), None, "no such file")
    return CsvReader(path) if fmt == "csv" else VCardReader(path, entity)


def _csv_mapping(reader: CsvReader, entity: str, mapping: dict[str, str | None] | None,
                 path: Path) -> dict[str, str | None]:
    guessed = guess_mapping(reader.headers, entity)
    if mapping is not None:
        check_mapping(mapping, reader.headers, entity, str(path))
        guessed.update(mapping)
    return guessed


def _unmapped_columns(reader, mapping: dict[str, str | None]) -> list[str]:
    if isinstance(reader, CsvReader):
        return [h for h in reader.headers if not mapping.get(h)]
    return [f"{name} ({count}x)" if count > 1 else name for name, count in sorted(reader.unused.items())]


class _Row:
    """One row of the file: its line, its fields (text), its cells as read (for the refused file)."""

    __slots__ = ("line", "fields", "cells", "problem")

    def __init__(self, line: int, fields: dict[str, str], cells: tuple[str, ...], problem: str | None = None):
        self.line, self.fields, self.cells, self.problem = line, fields, cells, problem


def _read_rows(reader, entity: str, mapping: dict[str, str | None] | None, limit: int | None = None) -> list[_Row]:
    """Every row (or the first ``limit``) with the mapping applied (CSV), names split and phone
    columns sorted by their labels (Google's "Phone 1 - Label": Mobile)."""
    out: list[_Row] = []
    if isinstance(reader, CsvReader):
        mapping = mapping if mapping is not None else guess_mapping(reader.headers, entity)
        index = {h: i for i, h in enumerate(reader.headers)}
        pairs = [(index[h], f) for h, f in mapping.items() if f]
        labels = phone_label_columns(reader.headers, mapping)
        for line, cells, problem in reader.records():
            fields = {f: cells[i] for i, f in pairs} if problem is None else {}
            if labels:
                _apply_phone_labels(fields, cells, labels, index)
            out.append(_Row(line, _split_full_name(fields), tuple(cells), problem))
            if limit is not None and len(out) >= limit:
                break
    else:
        for line, fields in reader:
            cells = tuple(fields.get(f, "") for f in (*FIELDS[entity], "full_name"))
            out.append(_Row(line, _split_full_name(fields), cells))
            if limit is not None and len(out) >= limit:
                break
    return out


def _apply_phone_labels(fields: dict[str, str], cells: list[str], labels: dict[str, str],
                        index: dict[str, int]) -> None:
    """A number whose label says mobile goes to ``mobile`` (and the other way round)."""
    moves = {}
    for field_name, label_header in labels.items():
        label = cells[index[label_header]].casefold()
        if not label:
            continue
        wants = "mobile" if any(word in label for word in MOBILE_LABEL_WORDS) else "phone"
        if wants != field_name:
            moves[field_name] = wants
    if moves:
        values = {f: fields.get(f, "") for f in ("phone", "mobile")}
        for source, target in moves.items():
            if values[source] and (not fields.get(target) or target in moves):
                fields[target], fields[source] = values[source], values[target] if target in moves else ""


def _split_full_name(fields: dict[str, str]) -> dict[str, str]:
    full = fields.pop("full_name", None)
    if full and not fields.get("first_name") and not fields.get("last_name"):
        first, _, last = full.strip().rpartition(" ")
        fields["first_name"], fields["last_name"] = first, last
    return fields


def preview(path: Path, entity: str, *, fmt: str | None = None, mapping: dict[str, str | None] | None = None,
            rows: int = 20) -> ImportPreview:
    """Guess the format and the header -> field mapping, parse the first ``rows`` rows, and
    list what would not be imported."""
    path = Path(path)
    entity = normalize_entity(entity)
    fmt = detect_format(path, fmt)
    reader = _reader(path, entity, fmt)
    headers = list(reader.headers)
    if isinstance(reader, CsvReader):
        mapping = _csv_mapping(reader, entity, mapping, path)
        first = _read_rows(reader, entity, mapping, limit=rows)
        unmapped = _unmapped_columns(reader, mapping)
    else:
        mapping = {}
        everything = _read_rows(reader, entity, None)  # every card: the unused properties of all of them
        first = everything[:rows]
        unmapped = _unmapped_columns(reader, mapping)
    return ImportPreview(fmt, headers, mapping, FIELDS[entity], [(r.line, r.fields) for r in first],
                         reader.count_rows(), unmapped)


def import_file(services, entity: str, path: Path, *, fmt: str | None = None,
                mapping: dict[str, str | None] | None = None,
                progress: ProgressCallback | None = None, skip_invalid: bool = False) -> ImportSummary:
    """Import ``path`` into ``entity`` (contact/company) in one transaction; see the module doc.

    ``skip_invalid``: import the valid rows and write the refused ones, with the reason,
    to ``<name>.refused.csv`` beside the file (:mod:`~crm_desktop.services.refused_rows`);
    without it, the first invalid row refuses the whole file and nothing is written.
    """
    path = Path(path)
    entity = normalize_entity(entity)
    fmt = detect_format(path, fmt)
    reader = _reader(path, entity, fmt)
    if isinstance(reader, CsvReader):
        mapping = _csv_mapping(reader, entity, mapping, path)
        if not any(mapping.values()):
            raise FileFormatError(str(path), 1, f"no column matches a {entity} field (columns: "
                                                f"{', '.join(reader.headers)}); map the columns by hand")
    rows = _read_rows(reader, entity, mapping)  # reads the whole file: its errors surface before any lock
    summary = ImportSummary(entity, str(path), fmt, unmapped=_unmapped_columns(reader, mapping or {}))
    run = None
    try:
        with services.unit_of_work() as uow:
            run = _Run(services, uow, entity, path, summary, progress, len(rows), skip_invalid)
            run.run(rows)
    except _Cancelled:
        log.info("import of %s cancelled; nothing was written", path)
        return ImportSummary(entity, str(path), fmt, cancelled=True, unmapped=summary.unmapped)
    if run is not None and run.refused:
        headers = reader.headers if isinstance(reader, CsvReader) else [
            EXPORT_HEADERS.get(f, "Name") for f in (*FIELDS[entity], "full_name")]
        summary.refused_path = str(write_refused(path, headers, run.refused))
    summary.lines.sort(key=lambda r: r.line)
    log.info("imported %s: %d created, %d updated, %d unchanged, %d skipped, %d refused", path, summary.created,
             summary.updated, summary.unchanged, summary.skipped, summary.refused)
    return summary


class _Refused(Exception):
    """One row broke a rule (caught per row; with ``skip_invalid`` it is written aside)."""


class _Run:
    """One import inside its unit of work.

    Set-based: every row is validated in Python (the services' own rules), then the
    duplicate keys of all rows go into a temporary table, and joins against the live
    records and against the earlier lines of the file find the duplicates in a few
    statements; companies are linked the same way. New rows go in through
    ``storage.changes.insert_synced_rows`` (stamps, ``executemany``, changes and audit as
    one batch); the search index is filled with one ``INSERT ... SELECT`` (bulk_fts).
    """

    def __init__(self, services, uow: UnitOfWork, entity: str, path: Path, summary: ImportSummary,
                 progress: ProgressCallback | None, total: int, skip_invalid: bool):
        self.services = services
        self.service = services.entity_service(entity)
        self.uow = uow
        self.session = uow.session
        self.entity = entity
        self.path = str(path)
        self.summary = summary
        self.progress = progress
        self.total = total
        self.skip_invalid = skip_invalid
        self.refused: list[RefusedRow] = []
        self.table = self.service.model.__table__.name
        # the unit of work's own connection, inside its transaction: plain DBAPI calls for the bulk paths
        self.dbapi = uow.session.connection().connection.driver_connection
        self.company_ids: dict[str, str] = {}  # name_key -> id

    # -- driving ---------------------------------------------------------------

    def run(self, rows: list[_Row]) -> None:
        cache_size = self.dbapi.execute("PRAGMA cache_size").fetchone()[0]
        # a larger page cache for this transaction keeps the indexes being appended to in memory
        self.dbapi.execute("PRAGMA cache_size=-200000")
        try:
            self._run(rows)
        finally:  # also after a refusal or cancel: the pooled connection gets its usual cache back
            self.dbapi.execute(f"PRAGMA cache_size={int(cache_size)}")
            self.dbapi.execute("DROP TABLE IF EXISTS temp.import_keys")
            self.dbapi.execute("DROP TABLE IF EXISTS temp.import_companies")

    def _tick(self, done: int, force: bool = False) -> None:
        if self.progress is not None and (force or done % PROGRESS_EVERY == 0):
            if self.progress(min(done, self.total), self.total) is False:
                raise _Cancelled()

    def _refuse(self, row: _Row, reason: str) -> None:
        """A row broke a rule: the whole file is refused, or (skip_invalid) just this row."""
        if not self.skip_invalid:
            raise FileFormatError(self.path, row.line, reason)
        self.refused.append(RefusedRow(row.line, reason, row.cells))
        self._result(LineResult(row.line, "refused", None, reason))

    def _result(self, result: LineResult) -> None:
        self.summary.lines.append(result)
        setattr(self.summary, result.outcome, getattr(self.summary, result.outcome) + 1)

    def _run(self, rows: list[_Row]) -> None:
        half = self.total // 2  # progress: reading and checking is the first half, writing the second
        self._tick(0, force=True)
        existing = self._existing_by_id(self._check_ids(rows))
        valid: list[tuple[_Row, dict[str, Any], dict[str, Any] | None]] = []
        for n, row in enumerate(rows, start=1):
            if n % PROGRESS_EVERY == 0:
                self._tick(n // 2, force=True)
            if row.problem is not None:
                self._refuse(row, row.problem)
                continue
            current = existing.get(row.fields.get("id", ""))
            try:
                values = self._clean(row.fields, current if current and current["deleted_at"] is None else None)
            except ValidationError as exc:
                self._refuse(row, str(exc))
                continue
            valid.append((row, values, current))
        if self.entity == "contact":
            valid = self._link_companies(valid)
        dupes = self._duplicates(valid)
        creates: list[tuple[_Row, dict[str, Any]]] = []
        outcome_ids: dict[int, str] = {}  # line -> the record it created, updated or duplicates
        for row, values, current in valid:
            record_id = row.fields.get("id")
            if record_id is None:
                found = self._duplicate_of(row.line, values, dupes, outcome_ids)
                if found is not None:
                    outcome_ids[row.line] = found[0]
                    self._result(LineResult(row.line, "skipped", found[0], found[1]))
                    continue
                values["id"] = uuid7()
                creates.append((row, values))
            elif current is not None:
                if current["deleted_at"] is not None:
                    self._result(LineResult(row.line, "skipped", record_id,
                                            f"{self.entity} {record_id} was deleted in this database; "
                                            "it is not brought back by an import"))
                    continue
                self._update(row, values, current)
            else:  # an id this database has not seen: create the record under it (client-made ids)
                values["id"] = record_id
                creates.append((row, values))
            outcome_ids[row.line] = values.get("id") or record_id
        self._insert(creates, half)
        self._tick(self.total, force=True)
        s = self.summary
        self.uow.publish_after_commit("import.finished", {
            "entity": self.entity, "path": self.path, "created": s.created, "updated": s.updated,
            "unchanged": s.unchanged, "skipped": s.skipped, "refused": s.refused})

    def _check_ids(self, rows: list[_Row]) -> list[str]:
        seen: dict[str, int] = {}
        for row in rows:
            if "id" not in row.fields or row.problem is not None:
                continue
            value = row.fields["id"].strip()
            if not value:
                del row.fields["id"]
                continue
            try:
                value = str(uuid.UUID(value))
            except ValueError:
                row.problem = f"id {value!r} is not a record id (expected a UUID such as an export writes)"
                continue
            if value in seen:
                row.problem = f"id {value} is on line {seen[value]} already"
                continue
            seen[value] = row.line
            row.fields["id"] = value
        return list(seen)

    # -- validation --------------------------------------------------------------

    def _clean(self, fields: dict[str, str], current: dict[str, Any] | None) -> dict[str, Any]:
        """Column values by the service's own rules: every field for a new record, only the
        row's fields for an existing one (a file without an e-mail column leaves e-mails alone)."""
        given = {k: fields[k] for k in _TEXT_FIELDS[self.entity] if k in fields}
        values = self.service.clean(self.session, given, SimpleNamespace(**current) if current else None)
        if self.entity == "contact" and "company" in fields:
            name = fields["company"].strip()
            values["\0company"] = name
            values["company_id"] = None
        if "tags" in fields:
            # "* myContacts", "* starred": Google's own system labels, not the user's
            values["tags"] = sorted({t for t in TAG_SEPARATOR.split(fields["tags"].strip())
                                     if t and not t.startswith("*")}, key=str.casefold)
        return values

    # -- companies ---------------------------------------------------------------------

    def _link_companies(self, valid):
        """Link each "Company" to the live company of that normalised name, creating missing ones.

        The distinct names of the file go into a temporary table; one join finds the existing
        companies (the oldest of a name wins), the missing ones are created in bulk.
        """
        first_line: dict[str, tuple[int, str]] = {}
        for row, values, _ in valid:
            name = values.get("\0company")
            if name:
                key = normalize_name(name)
                values["\0company_key"] = key
                if key and key not in first_line:
                    first_line[key] = (row.line, name)
        if not first_line:
            return valid
        db = self.dbapi
        db.execute("CREATE TEMP TABLE import_companies (name_key TEXT PRIMARY KEY, id TEXT)")
        db.executemany("INSERT INTO temp.import_companies (name_key) VALUES (?)", [(k,) for k in first_line])
        for key, ident in db.execute(
                "SELECT k.name_key, c.id FROM temp.import_companies k JOIN companies c "
                "ON c.name_key = k.name_key AND c.deleted_at IS NULL ORDER BY c.created_at DESC, c.id DESC"):
            self.company_ids[key] = ident  # DESC: the oldest company of that name is assigned last and wins
        creates, bad = [], {}
        for key, (line, name) in first_line.items():
            if key in self.company_ids:
                continue
            try:
                values = self.services.companies.clean(self.session, {"name": name}, None)
            except ValidationError as exc:
                bad[key] = f"Company: {exc}"
                continue
            values["id"] = uuid7()
            self.company_ids[key] = values["id"]
            creates.append(values)
        if creates:
            self._bulk_insert("company", models.Company, creates)
            self.summary.companies_created += len(creates)
        kept = []
        for row, values, current in valid:
            key = values.pop("\0company_key", None)
            name = values.pop("\0company", None)
            if name is not None:
                if key in bad:
                    self._refuse(row, bad[key])
                    continue
                values["company_id"] = self.company_ids.get(key) if key else None
            kept.append((row, values, current))
        return kept

    # -- duplicates ----------------------------------------------------------------

    def _keys(self, values: dict[str, Any]) -> list[tuple[str, tuple, str]]:
        """(key space, key, what it means) of the duplicate rules for one row, strongest first."""
        if self.entity == "company":
            key = values.get("name_key")
            return [("name", (key,), f"same name {values.get('name')!r}")] if key else []
        keys = []
        if values.get("email_key"):
            keys.append(("email", (values["email_key"],), f"same e-mail {values['email']!r}"))
        for name in ("phone", "mobile"):
            if values.get(f"{name}_key"):
                keys.append(("phone", (values[f"{name}_key"],), f"same phone number {values[name]!r}"))
        if values.get("name_key") and values.get("company_id"):
            keys.append(("name", (values["name_key"], values["company_id"]), "same name in the same company"))
        return keys

    def _duplicates(self, valid) -> dict[tuple, dict]:
        """Set-based: ``(space, key) -> {"existing": (id, name) | None, "lines": [lines in order]}``
        for every key a row of the file shares with a live record or with another row."""
        db = self.dbapi
        db.execute("CREATE TEMP TABLE import_keys (line INTEGER PRIMARY KEY, checked INTEGER, email_key TEXT, "
                   "phone_key TEXT, mobile_key TEXT, name_key TEXT, company_id TEXT)")
        if self.entity == "company":
            db.executemany("INSERT INTO temp.import_keys (line, checked, name_key) VALUES (?, ?, ?)",
                           [(row.line, "id" not in row.fields, v.get("name_key")) for row, v, _ in valid])
        else:
            db.executemany("INSERT INTO temp.import_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(row.line, "id" not in row.fields, v.get("email_key"), v.get("phone_key"),
                             v.get("mobile_key"), v.get("name_key"), v.get("company_id"))
                            for row, v, _ in valid])
        t = self.table
        found: dict[tuple, dict] = {}

        def note(space: str, key: tuple, existing=None, line=None):
            entry = found.setdefault((space, key), {"existing": None, "lines": []})
            if existing is not None and entry["existing"] is None:
                entry["existing"] = existing
            if line is not None:
                entry["lines"].append(line)

        # keys of rows that match live records (only rows without an id are checked)
        if self.entity == "company":
            existing_sql = [("name", "SELECT c.id, c.name, c.name_key, NULL FROM temp.import_keys k JOIN companies c "
                                     "ON c.name_key = k.name_key AND c.deleted_at IS NULL WHERE k.checked "
                                     "ORDER BY c.created_at, c.id")]
            spaces = [("name", "name_key, NULL", "name_key IS NOT NULL")]
        else:
            label = "trim(coalesce(c.first_name,'') || ' ' || coalesce(c.last_name,''))"
            existing_sql = [("email", f"SELECT c.id, {label}, c.email_key, NULL FROM temp.import_keys k JOIN {t} c "
                                      "ON c.email_key = k.email_key AND c.deleted_at IS NULL WHERE k.checked")]
            for mine in ("phone_key", "mobile_key"):
                for theirs in ("phone_key", "mobile_key"):
                    existing_sql.append(("phone", f"SELECT c.id, {label}, c.{theirs}, NULL FROM temp.import_keys k "
                                                  f"JOIN {t} c ON c.{theirs} = k.{mine} AND c.deleted_at IS NULL "
                                                  "WHERE k.checked"))
            existing_sql.append(("name", f"SELECT c.id, {label}, c.name_key, c.company_id FROM temp.import_keys k "
                                         f"JOIN {t} c ON c.company_id = k.company_id AND c.name_key = k.name_key "
                                         "AND c.deleted_at IS NULL WHERE k.checked"))
            spaces = [("email", "email_key, NULL", "email_key IS NOT NULL"),
                      ("phone", "phone_key, NULL", "phone_key IS NOT NULL"),
                      ("phone", "mobile_key, NULL", "mobile_key IS NOT NULL"),
                      ("name", "name_key, company_id", "name_key IS NOT NULL AND company_id IS NOT NULL")]
        for space, sql in existing_sql:
            order = "" if "ORDER BY" in sql else " ORDER BY c.created_at, c.id"
            for ident, name, key, extra in db.execute(sql + order):
                note(space, (key,) if extra is None else (key, extra), existing=(ident, name))
        # keys that several rows of the file share: their lines, in order
        union = " UNION ALL ".join(f"SELECT '{space}' AS space, line, {cols} FROM temp.import_keys WHERE {where}"
                               .replace(", NULL", " AS a, NULL AS b").replace(", company_id", " AS a, company_id AS b")
                               for space, cols, where in spaces)
        sql = (f"WITH k AS ({union}), shared AS (SELECT space, a, b FROM k GROUP BY space, a, b "
               "HAVING count(DISTINCT line) > 1) "
               "SELECT k.space, k.a, k.b, k.line FROM k JOIN shared s ON s.space = k.space AND s.a = k.a "
               "AND s.b IS k.b ORDER BY k.line")
        for space, a, b, line in db.execute(sql):
            note(space, (a,) if b is None else (a, b), line=line)
        return found

    def _duplicate_of(self, line: int, values: dict[str, Any], dupes: dict[tuple, dict],
                      outcome_ids: dict[int, str]) -> tuple[str, str] | None:
        """(record id, reason) when this row repeats a live record or an earlier line, else None."""
        for space, key, meaning in self._keys(values):
            entry = dupes.get((space, key))
            if entry is None:
                continue
            if entry["existing"] is not None:
                ident, name = entry["existing"]
                return ident, f"duplicate of existing {self.entity} {name!r} ({ident}): {meaning}"
            earlier = entry["lines"][0] if entry["lines"] else line
            if earlier < line:
                return outcome_ids.get(earlier, ""), f"duplicate of line {earlier} of this file ({meaning})"
        return None

    # -- writing ----------------------------------------------------------------------

    def _existing_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        columns = ["id", "deleted_at", *_TEXT_FIELDS[self.entity]]
        if self.entity == "contact":
            columns.append("company_id")
        link = "contact_tags" if self.entity == "contact" else "company_tags"
        fk = f"{self.entity}_id"
        tags = (f"(SELECT group_concat(t.name, char(31)) FROM {link} l JOIN tags t ON t.id = l.tag_id "
                f"WHERE l.{fk} = r.id)")
        sql = f"SELECT {', '.join('r.' + c for c in columns)}, {tags} FROM {self.table} r WHERE r.id IN ({{}})"
        out = {}
        for start in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
            part = ids[start:start + 500]
            for row in self.dbapi.execute(sql.format(", ".join("?" * len(part))), part):
                record = dict(zip(columns, row[:-1]))
                record["tags"] = sorted(row[-1].split("\x1f"), key=str.casefold) if row[-1] else []
                out[record["id"]] = record
        return out

    def _update(self, row: _Row, values: dict[str, Any], current: dict[str, Any]) -> None:
        """Change only the fields that differ from the stored record."""
        changes = {}
        for name, value in values.items():
            if name.endswith("_key") or name.startswith("\0"):
                continue
            old = current.get(name)
            if name == "tags":
                if [t.casefold() for t in value] != [t.casefold() for t in old]:
                    changes[name] = value
            elif old != value:
                changes[name] = value
        values["id"] = current["id"]
        if not changes:
            self._result(LineResult(row.line, "unchanged", current["id"]))
            return
        before = len(self.uow.changes)
        try:
            with self.session.begin_nested():  # a refused update leaves no half-written trace
                self.service.update_in(self.uow, current["id"], changes)
        except ValidationError as exc:
            self._refuse(row, str(exc))
            return
        outcome = "updated" if len(self.uow.changes) > before else "unchanged"
        self._result(LineResult(row.line, outcome, current["id"]))

    def _insert(self, creates: list[tuple[_Row, dict[str, Any]]], progress_base: int) -> None:
        rows = []
        tag_links: list[tuple[str, list[str]]] = []
        for _row, values in creates:
            tags = values.pop("tags", None)
            if tags:
                tag_links.append((values["id"], tags))
            rows.append(values)

        def tick(done: int) -> None:
            self._tick(progress_base + done * (self.total - progress_base) // max(1, len(rows)), force=True)

        self._bulk_insert(self.entity, self.service.model, rows, tag_links, tick)
        for row, values in creates:
            self._result(LineResult(row.line, "created", values["id"]))

    def _bulk_insert(self, entity: str, model, rows: list[dict[str, Any]],
                     tag_links: list[tuple[str, list[str]]] = (), tick: Callable[[int], None] | None = None) -> None:
        """Insert rows (column values with ``id``) with their sync columns, tags, search index,
        audit entries and changes. Storage stamps the sync columns and records the changes
        (``storage.changes.insert_synced_rows``), one batch per chunk."""
        if not rows:
            return
        table = model.__table__.name
        index = DeferredIndex(self.dbapi, table)  # one set-based fill of the search index instead of a trigger per row
        tag_names = dict(tag_links)
        for start in range(0, len(rows), CHUNK):
            part = rows[start:start + CHUNK]
            insert_synced_rows(self.uow.transaction, model, part, audit_action="import",
                               change_extras={v["id"]: {"tags": (None, tag_names[v["id"]])}
                                              for v in part if v["id"] in tag_names})
            if tick is not None:
                tick(start + CHUNK)
        if tag_links:
            ids = self._tag_ids({n for _, names in tag_links for n in names})
            link = models.contact_tags if entity == "contact" else models.company_tags
            fk = f"{entity}_id"
            links = {(rid, ids[n]) for rid, names in tag_links for n in names}
            self.dbapi.executemany(f"INSERT INTO {link.name} ({fk}, tag_id) VALUES (?, ?)", sorted(links))
        index.close()

    def _tag_ids(self, names: set[str]) -> dict[str, str]:
        by_key: dict[str, str] = {}
        for tag in self.services.tags.ensure(self.session, sorted(names)):
            self.session.flush()
            by_key[tag.name_key] = tag.id
        return {n: by_key[normalize_name(n)] for n in names}
