"""Import contacts and companies from CSV or vCard files (docs/import-export.md).

One import is one write transaction (one :class:`UnitOfWork`): a malformed file,
an invalid value or a cancel rolls everything back, so the database is either
unchanged or has the whole file. Inside the transaction rows are handled in
chunks: new records go in with bulk inserts (one audit entry and one listener
:class:`Change` per record, through ``storage.changes.insert_synced_rows``), records
named by an ``id`` column are updated through the service's ``update_in`` so
only the fields that differ change and are audited.

Rows without an id that match an existing record (same e-mail, same phone or
mobile, or the same normalised name in the same company) are skipped and
reported with the record they match. The search index follows by itself: the
FTS triggers run inside the same transaction.

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
from typing import Any, Callable, Iterator, Sequence


from crm_desktop.domain.ids import uuid7
from crm_desktop.domain.validation import normalize_email, normalize_name, normalize_phone
from crm_desktop.errors import FileFormatError, ValidationError
from crm_desktop.services.bulk_fts import DeferredIndex
from crm_desktop.services.csv_format import FIELDS, TAG_SEPARATOR, CsvReader, check_mapping, guess_mapping
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
    """What happened to one row: ``created``, ``updated``, ``unchanged`` or ``skipped`` (with why)."""

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
    companies_created: int = 0
    cancelled: bool = False
    lines: list[LineResult] = field(default_factory=list)

    @property
    def skipped_lines(self) -> list[LineResult]:
        return [r for r in self.lines if r.outcome == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "path": self.path, "format": self.format, "cancelled": self.cancelled,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "skipped": self.skipped, "companies_created": self.companies_created,
                "skipped_lines": [{"line": r.line, "record_id": r.record_id, "reason": r.reason}
                                  for r in self.skipped_lines]}


@dataclass(frozen=True)
class ImportPreview:
    """What the column-mapping dialog shows: the guessed mapping and the first rows as fields."""

    format: str
    headers: list[str]
    mapping: dict[str, str | None]
    fields: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]
    total_rows: int


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


def _rows(reader, entity: str, mapping: dict[str, str | None] | None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, field -> text) for every row, with the mapping applied (CSV) and names split."""
    if isinstance(reader, CsvReader):
        mapping = mapping if mapping is not None else guess_mapping(reader.headers, entity)
        pairs = [(h, f) for h, f in mapping.items() if f]
        for line, raw in reader:
            yield line, _split_full_name({f: raw[h] for h, f in pairs})
    else:
        for line, fields in reader:
            yield line, _split_full_name(fields)


def _split_full_name(fields: dict[str, str]) -> dict[str, str]:
    full = fields.pop("full_name", None)
    if full and not fields.get("first_name") and not fields.get("last_name"):
        first, _, last = full.strip().rpartition(" ")
        fields["first_name"], fields["last_name"] = first, last
    return fields


def preview(path: Path, entity: str, *, fmt: str | None = None, mapping: dict[str, str | None] | None = None,
            rows: int = 20) -> ImportPreview:
    """Guess the format and the header -> field mapping and parse the first ``rows`` rows."""
    path = Path(path)
    entity = normalize_entity(entity)
    fmt = detect_format(path, fmt)
    reader = _reader(path, entity, fmt)
    headers = list(reader.headers)
    if isinstance(reader, CsvReader):
        guessed = guess_mapping(headers, entity)
        if mapping is not None:
            check_mapping(mapping, headers, entity, str(path))
            guessed.update(mapping)
        mapping = guessed
    else:
        mapping = {}
    first: list[tuple[int, dict[str, str]]] = []
    for item in _rows(reader, entity, mapping if fmt == "csv" else None):
        if len(first) >= rows:
            break
        first.append(item)
    return ImportPreview(fmt, headers, mapping, FIELDS[entity], first, reader.count_rows())


def import_file(services, entity: str, path: Path, *, fmt: str | None = None,
                mapping: dict[str, str | None] | None = None,
                progress: ProgressCallback | None = None) -> ImportSummary:
    """Import ``path`` into ``entity`` (contact/company) in one transaction; see the module doc."""
    path = Path(path)
    entity = normalize_entity(entity)
    fmt = detect_format(path, fmt)
    reader = _reader(path, entity, fmt)
    if isinstance(reader, CsvReader):
        guessed = guess_mapping(reader.headers, entity)
        if mapping is not None:
            check_mapping(mapping, reader.headers, entity, str(path))
            guessed.update(mapping)
        mapping = guessed
        if not any(mapping.values()):
            raise FileFormatError(str(path), 1, f"no column matches a {entity} field (columns: "
                                                f"{', '.join(reader.headers)}); map the columns by hand")
    total = reader.count_rows()  # also finds CSV quoting errors before the database is locked
    summary = ImportSummary(entity, str(path), fmt)
    try:
        with services.unit_of_work() as uow:
            _Run(services, uow, entity, path, summary, progress, total).run(_rows(reader, entity, mapping))
    except _Cancelled:
        log.info("import of %s cancelled; nothing was written", path)
        return ImportSummary(entity, str(path), fmt, cancelled=True)
    log.info("imported %s: %d created, %d updated, %d unchanged, %d skipped", path, summary.created,
             summary.updated, summary.unchanged, summary.skipped)
    return summary


class _Run:
    """One import inside its unit of work."""

    def __init__(self, services, uow: UnitOfWork, entity: str, path: Path, summary: ImportSummary,
                 progress: ProgressCallback | None, total: int):
        self.services = services
        self.service = services.entity_service(entity)
        self.uow = uow
        self.session = uow.session
        self.conn = uow.session.connection()
        self.entity = entity
        self.path = str(path)
        self.summary = summary
        self.progress = progress
        self.total = total
        self.done = 0
        self.table = self.service.model.__table__.name
        #: key -> (line, record id, what) of rows of this file, to name the line a duplicate repeats
        self.file_keys: dict[tuple, tuple[int, str]] = {}
        self.company_ids: dict[str, str] = {}  # name_key -> id
        self.tag_ids: dict[str, str] = {}  # name_key -> id
        self.seen_ids: dict[str, int] = {}  # id -> line, so that one id cannot appear twice
        # the unit of work's own connection, inside its transaction: plain DBAPI calls for the hot paths
        self.dbapi = dbapi = self.conn.connection.driver_connection
        self.name_keys: dict[str, str | None] = {}
        # new rows are indexed for search set-based after each chunk (see bulk_fts), same transaction
        self.index = DeferredIndex(dbapi, self.table)
        # a larger page cache for this transaction keeps the indexes being appended to in memory
        self.cache_size = dbapi.execute("PRAGMA cache_size").fetchone()[0]
        dbapi.execute("PRAGMA cache_size=-200000")
        self.company_index = DeferredIndex(dbapi, "companies") if entity == "contact" else None

    # -- driving ---------------------------------------------------------------

    def run(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        try:
            self._run(rows)
        finally:  # also after a refusal or cancel: the pooled connection gets its usual cache back
            self.dbapi.execute(f"PRAGMA cache_size={int(self.cache_size)}")

    def _run(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        self._tick(force=True)
        chunk: list[tuple[int, dict[str, str]]] = []
        for item in rows:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                self._chunk(chunk)
                chunk = []
        if chunk:
            self._chunk(chunk)
        self.index.close()
        if self.company_index is not None:
            self.company_index.close()
        self._tick(force=True)
        s = self.summary
        self.uow.publish_after_commit("import.finished", {
            "entity": self.entity, "path": self.path, "created": s.created, "updated": s.updated,
            "unchanged": s.unchanged, "skipped": s.skipped})

    def _tick(self, force: bool = False) -> None:
        if self.progress is not None and (force or self.done % PROGRESS_EVERY == 0):
            if self.progress(self.done, self.total) is False:
                raise _Cancelled()

    def _refuse(self, line: int, reason: str) -> None:
        raise FileFormatError(self.path, line, reason)

    # -- one chunk ---------------------------------------------------------------

    def _chunk(self, chunk: list[tuple[int, dict[str, str]]]) -> None:
        for line, fields in chunk:
            if "id" in fields:
                fields["id"] = self._check_id(line, fields["id"])
                if not fields["id"]:
                    del fields["id"]
                elif fields["id"] in self.seen_ids:
                    self._refuse(line, f"id {fields['id']} is on line {self.seen_ids[fields['id']]} already")
                else:
                    self.seen_ids[fields["id"]] = line
        existing = self._existing_by_id([f["id"] for _, f in chunk if "id" in f])
        if self.entity == "contact":
            self._resolve_companies(chunk)
        cleaned: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        for line, fields in chunk:
            current = existing.get(fields.get("id", ""))
            try:
                values = self._clean(fields, current if current and current["deleted_at"] is None else None)
            except ValidationError as exc:
                self._refuse(line, str(exc))
            cleaned.append((line, fields, values))
        dupes = self._existing_duplicates([v for _, f, v in cleaned if "id" not in f])
        creates: list[tuple[int, dict[str, Any]]] = []
        for line, fields, values in cleaned:
            record_id = fields.get("id")
            if record_id is None:
                reason = self._duplicate_reason(values, dupes)
                if reason is not None:
                    self._result(LineResult(line, "skipped", reason[0], reason[1]))
                else:
                    values["id"] = uuid7()
                    self._remember(line, values)
                    creates.append((line, values))
            elif record_id in existing:
                current = existing[record_id]
                if current["deleted_at"] is not None:
                    self._result(LineResult(line, "skipped", record_id,
                                            f"{self.entity} {record_id} was deleted in this database; "
                                            "it is not brought back by an import"))
                else:
                    self._update(line, fields, values, current)
            else:  # an id this database has not seen: create the record under it (client-made ids)
                values["id"] = record_id
                self._remember(line, values)
                creates.append((line, values))
        if creates:
            self._insert(creates)
        self.session.flush()
        self.index.fill()

    def _check_id(self, line: int, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        try:
            return str(uuid.UUID(value))
        except ValueError:
            self._refuse(line, f"id {value!r} is not a record id (expected a UUID such as an export writes)")
        raise AssertionError  # unreachable

    def _result(self, result: LineResult) -> None:
        self.summary.lines.append(result)
        setattr(self.summary, result.outcome, getattr(self.summary, result.outcome) + 1)
        self.done += 1
        self._tick()

    # -- validation --------------------------------------------------------------

    def _clean(self, fields: dict[str, str], current: dict[str, Any] | None) -> dict[str, Any]:
        """Column values by the service's own rules: every field for a new record, only the
        row's fields for an existing one (a file without an e-mail column leaves e-mails alone)."""
        given = {k: fields[k] for k in _TEXT_FIELDS[self.entity] if k in fields}
        values = self.service.clean(self.session, given, SimpleNamespace(**current) if current else None)
        if self.entity == "contact" and "company" in fields:
            values["company_id"] = self.company_ids.get(self._name_key(fields["company"]) or "")
        if "tags" in fields:
            values["tags"] = sorted({t for t in TAG_SEPARATOR.split(fields["tags"].strip()) if t},
                                    key=str.casefold)
        return values

    # -- duplicates ----------------------------------------------------------------

    def _keys(self, values: dict[str, Any]) -> list[tuple[tuple, str]]:
        """(key, what it means) of the duplicate rules for one row (computed once per row)."""
        keys = values.get("\0keys")
        if keys is None:
            keys = values["\0keys"] = self._make_keys(values)
        return keys

    def _make_keys(self, values: dict[str, Any]) -> list[tuple[tuple, str]]:
        if self.entity == "company":
            key = values.get("name_key")
            return [(("name", key), f"same name {values.get('name')!r}")] if key else []
        keys = []
        if values.get("email_key"):
            keys.append((("email", values["email_key"]), f"same e-mail {values['email']!r}"))
        for name in ("phone", "mobile"):
            if values.get(f"{name}_key"):
                keys.append((("phone", values[f"{name}_key"]), f"same phone number {values[name]!r}"))
        if values.get("name_key") and values.get("company_id"):
            keys.append((("name", values["name_key"], values["company_id"]),
                         "same name in the same company"))
        return keys

    def _remember(self, line: int, values: dict[str, Any]) -> None:
        for key, _ in self._keys(values):
            self.file_keys.setdefault(key, (line, values["id"]))

    def _existing_duplicates(self, rows: Sequence[dict[str, Any]]) -> dict[tuple, tuple[str, str]]:
        """key -> (id, display name) of live records that share a key with these rows."""
        wanted: dict[str, set] = {"email": set(), "phone": set(), "name": set()}
        for values in rows:
            for key, _ in self._keys(values):
                wanted[key[0]].add(key[1:] if len(key) > 2 else key[1])
        found: dict[tuple, tuple[str, str]] = {}
        t = self.table
        if self.entity == "company":
            for ident, name, name_key in self._select_in(
                    f"SELECT id, name, name_key FROM {t} WHERE deleted_at IS NULL AND name_key IN ({{}})",
                    wanted["name"]):
                found.setdefault(("name", name_key), (ident, name))
            return found
        label = "trim(coalesce(first_name,'') || ' ' || coalesce(last_name,''))"
        for ident, name, key in self._select_in(
                f"SELECT id, {label}, email_key FROM {t} WHERE deleted_at IS NULL AND email_key IN ({{}})",
                wanted["email"]):
            found.setdefault(("email", key), (ident, name))
        for column in ("phone_key", "mobile_key"):
            for ident, name, key in self._select_in(
                    f"SELECT id, {label}, {column} FROM {t} WHERE deleted_at IS NULL AND {column} IN ({{}})",
                    wanted["phone"]):
                found.setdefault(("phone", key), (ident, name))
        # one exact probe of the (company_id, name_key) index per pair: a common name like "Anna
        # Müller" may match thousands of contacts in other companies, which an IN list would fetch
        sql = (f"SELECT id, {label} FROM {t} WHERE company_id = ? AND name_key = ? AND deleted_at IS NULL "
               "LIMIT 1")
        for key, company in wanted["name"]:
            row = self.dbapi.execute(sql, (company, key)).fetchone()
            if row is not None:
                found.setdefault(("name", key, company), (row[0], row[1]))
        return found

    def _duplicate_reason(self, values: dict[str, Any], dupes: dict[tuple, tuple[str, str]]) -> tuple[str, str] | None:
        for key, meaning in self._keys(values):
            if key in self.file_keys:
                line, ident = self.file_keys[key]
                return ident, f"duplicate of line {line} of this file ({meaning})"
            if key in dupes:
                ident, name = dupes[key]
                return ident, f"duplicate of existing {self.entity} {name!r} ({ident}): {meaning}"
        return None

    def _select_in(self, sql: str, values) -> Iterator[tuple]:
        values = list(values)
        for start in range(0, len(values), 500):  # stay below SQLite's bound-parameter limit
            part = values[start:start + 500]
            yield from self.dbapi.execute(sql.format(", ".join("?" * len(part))), part).fetchall()

    # -- companies and tags ----------------------------------------------------------

    def _resolve_companies(self, chunk: list[tuple[int, dict[str, str]]]) -> None:
        """Link each "Company" to the live company of that normalised name, creating missing ones."""
        names: dict[str, tuple[int, str]] = {}
        for line, fields in chunk:
            name = (fields.get("company") or "").strip()
            key = self._name_key(name) if name else None
            if key and key not in self.company_ids and key not in names:
                names[key] = (line, name)
        if not names:
            return
        for ident, key in self._select_in(
                "SELECT id, name_key FROM companies WHERE deleted_at IS NULL AND name_key IN ({}) "
                "ORDER BY created_at DESC", names):
            self.company_ids[key] = ident  # DESC: the oldest company of that name wins
        missing = [(line, name) for key, (line, name) in names.items() if key not in self.company_ids]
        if not missing:
            return
        service = self.services.companies
        creates = []
        for line, name in missing:
            try:
                values = service.clean(self.session, {"name": name}, None)
            except ValidationError as exc:
                self._refuse(line, f"Company: {exc}")
            values["id"] = uuid7()
            self.company_ids[values["name_key"]] = values["id"]
            creates.append(values)
        self._bulk_insert("company", models.Company, creates)
        self.company_index.fill()
        self.summary.companies_created += len(creates)

    def _name_key(self, name: str) -> str | None:
        # company names repeat on many rows: normalise each spelling once
        key = self.name_keys.get(name, "\0")
        if key == "\0":
            key = self.name_keys[name] = normalize_name(name)
        return key

    def _tag_ids(self, names: set[str]) -> dict[str, str]:
        missing = [n for n in names if normalize_name(n) not in self.tag_ids]
        if missing:
            for tag in self.services.tags.ensure(self.session, missing):
                self.session.flush()
                self.tag_ids[tag.name_key] = tag.id
        return {n: self.tag_ids[normalize_name(n)] for n in names}

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
        for row in self._select_in(sql, ids):
            record = dict(zip(columns, row[:-1]))
            record["tags"] = sorted(row[-1].split("\x1f"), key=str.casefold) if row[-1] else []
            out[record["id"]] = record
        return out

    def _update(self, line: int, fields: dict[str, str], values: dict[str, Any], current: dict[str, Any]) -> None:
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
        if not changes:
            self._result(LineResult(line, "unchanged", current["id"]))
            return
        before = len(self.uow.changes)
        try:
            self.service.update_in(self.uow, current["id"], changes)
        except ValidationError as exc:
            self._refuse(line, str(exc))
        outcome = "updated" if len(self.uow.changes) > before else "unchanged"
        values["id"] = current["id"]
        self._remember(line, values)
        self._result(LineResult(line, outcome, current["id"]))

    def _insert(self, creates: list[tuple[int, dict[str, Any]]]) -> None:
        model = self.service.model
        rows = []
        tag_links: list[tuple[str, list[str]]] = []
        for _line, values in creates:
            tags = values.pop("tags", None)
            if tags:
                tag_links.append((values["id"], tags))
            rows.append(values)
        self._bulk_insert(self.entity, model, rows, tag_links)
        for line, values in creates:
            self._result(LineResult(line, "created", values["id"]))

    def _bulk_insert(self, entity: str, model, rows: list[dict[str, Any]],
                     tag_links: list[tuple[str, list[str]]] = ()) -> None:
        """Insert rows (column values with ``id``) with their sync columns, tags, audit and changes."""
        if not rows:
            return
        for values in rows:
            values.pop("\0keys", None)
        tag_names_by_id = dict(tag_links)
        # storage stamps the sync columns and records the changes, as one batch (storage/changes.py)
        insert_synced_rows(self.uow.transaction, model, rows, audit_action="import",
                           change_extras={i: {"tags": (None, names)} for i, names in tag_names_by_id.items()})
        if tag_links:
            ids = self._tag_ids({n for _, names in tag_links for n in names})
            table = models.contact_tags if entity == "contact" else models.company_tags
            fk = f"{entity}_id"
            links = {(rid, ids[n]) for rid, names in tag_links for n in names}
            self.dbapi.executemany(f"INSERT INTO {table.name} ({fk}, tag_id) VALUES (?, ?)", sorted(links))
