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

import gc
from bisect import bisect_left, bisect_right
import logging
import queue
import sqlite3
import threading
from contextlib import ExitStack, contextmanager
from itertools import compress, islice, repeat
from operator import lt
import uuid
from types import SimpleNamespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Sequence, Union

from crm_desktop.domain.validation import normalize_name
from crm_desktop.errors import FileFormatError, ValidationError
from crm_desktop.services.bulk_fts import DeferredIndex
from crm_desktop.services.csv_format import (
    EXPORT_HEADERS, FIELDS, MOBILE_LABEL_WORDS, TAG_SEPARATOR, CsvReader, guess_mapping, merge_mapping,
    phone_label_columns,
)
from crm_desktop.services.refused_rows import RefusedRow, write_refused
from crm_desktop.services.unit_of_work import UnitOfWork
from crm_desktop.storage import models
from crm_desktop.storage.bulk_indexes import SuspendedIndexes
from crm_desktop.storage.base import SyncedRow
from crm_desktop.storage.changes import insert_synced_columns, new_ids
from crm_desktop.storage.dbapi import sqlite_connection

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from crm_desktop.services import CrmServices
    from crm_desktop.services.entity import EntityService
    from crm_desktop.services.vcard_format import VCardReader

#: a file being imported: CSV or vCards (vobject is imported only for vCards)
_Reader = Union[CsvReader, "VCardReader"]
#: per key space: (space, the key of each new row or None, the values the match is described by)
_KeyColumn = tuple[str, list[Any], "list[Any] | None"]

log = logging.getLogger(__name__)

#: progress(done_rows, total_rows) -> False to cancel (None or True go on)
ProgressCallback = Callable[[int, int], "bool | None"]

FORMATS = ("csv", "vcard")
ENTITIES = ("contact", "company")
CHUNK = 5000
#: a contact import of more new rows than this goes through the file in segments of at most this many
#: rows, reading and validating the next segments on a thread while SQLite indexes this one (:class:`_Validator`)
SEGMENT_ROWS = 40_000
#: the first segment's size (nothing is validated ahead of it, so it is small) and how fast the next
#: ones grow to SEGMENT_ROWS: each is read and validated while SQLite indexes the ones before, which
#: takes about 1.4 times as long per row
FIRST_SEGMENT_ROWS = 4_000
SEGMENT_GROWTH = 1.35
#: the validating thread reads and validates in pieces of this many rows and looks between them
#: whether it may go on (:meth:`_Validator.quiet`)
PIECE_ROWS = 2_000
PROGRESS_EVERY = 500
#: an import into a table with at most this many live records per row of the file reads their keys
#: once (_Run._live_keys) instead of joining each segment's keys against the table
LIVE_KEYS_PER_ROW = 1.0
#: the columns of a file that are values of the record itself (not its id, company or tags)
_TEXT_FIELDS = {entity: tuple(f for f in fields if f not in ("id", "company", "tags"))
                for entity, fields in FIELDS.items()}


#: a line number after every line of a file
_NEVER = float("inf")


class LineResult(NamedTuple):
    """What happened to one row: ``created``, ``updated``, ``unchanged``, ``skipped`` (a duplicate,
    with why) or ``refused`` (it broke a rule; only with ``skip_invalid``). A named tuple: an
    import makes one per row, and a frozen dataclass costs several times as much to build."""

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImportSummary":
        """The summary back from :meth:`to_dict` (what ``import --progress-json`` prints; the import
        dialog runs the import in a child process and reads it). Only the skipped and refused lines
        travel: the per-row results of created and updated rows are not part of it."""
        lines = [LineResult(int(r["line"]), "skipped", r.get("record_id"), r.get("reason"))
                 for r in data.get("skipped_lines", ())]
        lines += [LineResult(int(r["line"]), "refused", None, r.get("reason")) for r in data.get("refused_lines", ())]
        lines.sort(key=lambda r: r.line)
        return cls(entity=data["entity"], path=data["path"], format=data["format"],
                   created=int(data.get("created", 0)), updated=int(data.get("updated", 0)),
                   unchanged=int(data.get("unchanged", 0)), skipped=int(data.get("skipped", 0)),
                   refused=int(data.get("refused", 0)), companies_created=int(data.get("companies_created", 0)),
                   cancelled=bool(data.get("cancelled", False)), lines=lines,
                   unmapped=list(data.get("unmapped", ())), refused_path=data.get("refused_path"))


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


def _reader(path: Path, entity: str, fmt: str) -> _Reader:
    if not path.is_file():
        raise FileFormatError(str(path), None, "no such file")
    if fmt == "csv":
        return CsvReader(path)
    from crm_desktop.services.vcard_format import VCardReader  # vobject: only for vCards

    return VCardReader(path, entity)


def _csv_mapping(reader: CsvReader, entity: str, mapping: dict[str, str | None] | None,
                 path: Path) -> dict[str, str | None]:
    guessed = guess_mapping(reader.headers, entity)
    if mapping is not None:
        return merge_mapping(guessed, mapping, reader.headers, entity, str(path))
    return guessed


def _unmapped_columns(reader: _Reader, mapping: dict[str, str | None]) -> list[str]:
    if isinstance(reader, CsvReader):
        return [h for h in reader.headers if not mapping.get(h)]
    return [f"{name} ({count}x)" if count > 1 else name for name, count in sorted(reader.unused.items())]


class _Row:
    """One row of the file: its line, its fields (text), its cells as read (for the refused file).

    A CSV row whose fields are plain cells (no phone labels to sort out, no full name to split)
    keeps only its cells and the shared ``index`` (field -> cell); ``fields`` is made when first
    asked for, so an import that reads the file column by column never builds a dict per row.
    """

    __slots__ = ("line", "_fields", "cells", "problem", "index")

    def __init__(self, line: int, fields: dict[str, str] | None, cells: Sequence[str], problem: str | None = None,
                 index: dict[str, int] | None = None):
        self.line, self._fields, self.cells, self.problem, self.index = line, fields, cells, problem, index

    @property
    def record_id(self) -> str | None:
        """The row's ``id`` field (checked by ``_check_ids``), without making ``fields`` for it."""
        if self._fields is None and "id" not in self._index():
            return None
        return self.fields.get("id")

    @property
    def fields(self) -> dict[str, str]:
        if self._fields is None:
            self._fields = {f: self.cells[i] for f, i in self._index().items()} if self.problem is None else {}
        return self._fields

    def _index(self) -> dict[str, int]:
        """The shared field -> cell index, which a row made without ``fields`` always has."""
        assert self.index is not None, "a row without fields has the index"
        return self.index


def _read_rows(reader: _Reader, entity: str, mapping: dict[str, str | None] | None, limit: int | None = None) -> list[_Row]:
    """Every row (or the first ``limit``): :func:`_iter_rows` as a list."""
    return list(islice(_iter_rows(reader, entity, mapping), limit))


def _iter_rows(reader: _Reader, entity: str, mapping: dict[str, str | None] | None) -> Iterator[_Row]:
    """The file's rows with the mapping applied (CSV), names split and phone columns sorted by their
    labels (Google's "Phone 1 - Label": Mobile)."""
    if isinstance(reader, CsvReader):
        mapping = mapping if mapping is not None else guess_mapping(reader.headers, entity)
        index = {h: i for i, h in enumerate(reader.headers)}
        pairs = [(index[h], f) for h, f in mapping.items() if f]
        labels = phone_label_columns(reader.headers, mapping)
        plain = not labels and all(f != "full_name" for _, f in pairs)
        by_field = {f: i for i, f in pairs}
        for line, cells, problem in reader.records():
            if plain:
                yield _Row(line, None, cells, problem, by_field)
            else:
                fields = {f: cells[i] for i, f in pairs} if problem is None else {}
                if labels:
                    _apply_phone_labels(fields, cells, labels, index)
                yield _Row(line, _split_full_name(fields), tuple(cells), problem)
    else:
        for line, card in reader:
            card_cells = tuple(card.get(f, "") for f in (*FIELDS[entity], "full_name"))
            yield _Row(line, _split_full_name(card), card_cells)


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


def import_file(services: CrmServices, entity: str, path: Path, *, fmt: str | None = None,
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
    # The cyclic garbage collector would walk the hundreds of thousands of rows, tuples and lists of a
    # large import again and again while they are made (a second and more for 200k rows); an import
    # makes no reference cycles worth collecting meanwhile, so it is paused and resumed after.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _import(services, entity, path, reader, fmt, mapping, progress, skip_invalid)
    finally:
        if paused:
            gc.enable()


def _import(services: CrmServices, entity: str, path: Path, reader: _Reader, fmt: str, mapping: dict[str, str | None] | None,
            progress: ProgressCallback | None, skip_invalid: bool) -> ImportSummary:
    # A large contact file without record ids is read as it is imported (by the validating thread,
    # segment by segment: _Run.stream); any other file is read whole first, so that every id can be
    # checked against the database before the first write.
    streamed = (entity == "contact" and isinstance(reader, CsvReader) and "id" not in (mapping or {}).values()
                and reader.estimated_rows() > SEGMENT_ROWS)
    rows = [] if streamed else _read_rows(reader, entity, mapping)
    summary = ImportSummary(entity, str(path), fmt, unmapped=_unmapped_columns(reader, mapping or {}))
    run = None
    try:
        with services.unit_of_work() as uow:
            if streamed:
                assert isinstance(reader, CsvReader)
                run = _Run(services, uow, entity, path, summary, progress, reader.estimated_rows(), skip_invalid)
                run.run(rows, _iter_rows(reader, entity, mapping))
            else:
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


class _Segment(NamedTuple):
    """Rows ``a`` to ``b`` of the file (positions in the run's row list), read and validated."""

    a: int
    b: int
    fresh: list[int]  # the new rows among them (every readable one when the file names no record)
    cols: dict[str, list[Any]]  # their cleaned columns (_Run._clean_columns)
    errors: dict[int, str]  # position in ``fresh`` -> why that row breaks a rule
    last: bool


#: (a, b, the new rows among them, whether it is the last segment); takes the validator's
#: ``(enter, leave)`` to read a streamed file piece by piece
_Plan = Callable[[Callable[[], bool], Callable[[], None]], Iterator[tuple[int, int, list[int], bool]]]


def _segment_sizes() -> Iterator[int]:
    """The sizes of a segmented import's segments: small at first, growing to SEGMENT_ROWS."""
    size = float(max(1, min(FIRST_SEGMENT_ROWS, SEGMENT_ROWS // 4)))
    while True:
        yield max(1, min(int(size), SEGMENT_ROWS))
        size *= SEGMENT_GROWTH


class _Validator:
    """Reads (a streamed file) and validates the segments of a contact import on a thread of its
    own (``_Run._clean_columns``: pure Python, no database), ahead of the importing thread.

    SQLite releases the GIL while a statement runs, so the thread works while the importing thread
    (which owns the write transaction) runs its long statements, the search index fill of each
    segment (:meth:`window`), or waits for the next segment. Row-by-row statements (``executemany``,
    the ORM) take the GIL back after every row and would each wait behind a busy thread, so outside
    a window the thread stops between pieces of PIECE_ROWS rows (:meth:`quiet`). It runs up to two
    segments ahead.
    """

    def __init__(self, run: "_Run", rows: list[_Row], plan: _Plan):
        self._open = threading.Event()  # a window: the thread may work
        self._busy = threading.Lock()  # held by the thread while it works on a piece
        self._ahead = threading.Semaphore(2)
        self._out: queue.SimpleQueue[tuple[_Segment | None, BaseException | None]] = queue.SimpleQueue()
        self._stop = False
        self._thread = threading.Thread(target=self._work, args=(run, rows, plan), name="import-validate",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the validating thread ------------------------------------------------------------

    def _enter(self) -> bool:
        """Wait for a window and hold ``_busy`` (True), or False when told to stop."""
        while True:
            self._open.wait()
            self._busy.acquire()
            if self._stop:
                self._busy.release()
                return False
            if self._open.is_set():
                return True
            self._busy.release()  # closed meanwhile: wait for the next window

    def _leave(self) -> None:
        self._busy.release()

    def _work(self, run: "_Run", rows: list[_Row], plan: _Plan) -> None:
        try:
            for a, b, fresh, last in plan(self._enter, self._leave):
                self._ahead.acquire()
                if self._stop:
                    return
                plain = bool(fresh) and rows[fresh[0]].index is not None and all(
                    rows[i].index is rows[fresh[0]].index for i in fresh)
                step = PIECE_ROWS if plain else max(1, len(fresh))  # vCards etc.: fields vary by row
                cols: dict[str, list[Any]] = {}
                errors: dict[int, str] = {}
                for start in range(0, len(fresh), step) if fresh else [0]:
                    if not self._enter():
                        return
                    try:
                        piece, piece_errors = run._clean_columns([rows[i] for i in fresh[start:start + step]])
                    finally:
                        self._leave()
                    if not cols:
                        cols = piece
                    else:
                        for name, values in piece.items():
                            cols[name].extend(values)
                    errors.update((start + j, message) for j, message in piece_errors.items())
                self._out.put((_Segment(a, b, fresh, cols, errors, last), None))
                if last:
                    return
        except BaseException as exc:  # handed to the importing thread, which raises it
            self._out.put((None, exc))

    # -- the importing thread -----------------------------------------------------------------

    def next(self) -> _Segment:
        """The next segment, read and validated (waits for it, with the window open meanwhile)."""
        try:
            segment, exc = self._out.get_nowait()
        except queue.Empty:
            if self._open.is_set():  # a window is open already (a fill runs): it stays open
                segment, exc = self._out.get()
            else:
                with self.window():
                    segment, exc = self._out.get()
        if exc is not None:
            raise exc
        assert segment is not None
        self._ahead.release()
        return segment

    def open(self) -> None:
        """Open a window until :meth:`quiet`."""
        self._open.set()

    @contextmanager
    def window(self) -> Iterator[None]:
        """A long statement (or a wait) runs in this block: the thread may work meanwhile."""
        self._open.set()
        try:
            yield
        finally:
            self.quiet()

    def quiet(self) -> None:
        """Close the window: the piece under way ends before the importing thread goes on."""
        self._open.clear()
        with self._busy:
            pass

    def finish(self) -> None:
        """Stop (after the last segment, a refusal or a cancel) and wait for the thread."""
        self._stop = True
        self._ahead.release()
        self._open.set()
        self._thread.join()
        self._open.clear()


class _Run:
    """One import inside its unit of work.

    Column-wise and set-based: the new records' fields are validated a column at a time by the
    service's own rules (``clean_columns``: same rules and messages as ``clean``), rows that
    update a record by its id one by one (``clean`` with the stored record). Duplicates within
    the file are found with one dictionary per kind of key (the first line of each key), those
    against the live records by joins over a temporary key table; companies are linked the same
    way. New rows go in through ``storage.changes.insert_synced_columns`` (stamps,
    ``executemany``, changes and audit as one batch per chunk); the search index is filled with
    one ``INSERT ... SELECT`` (bulk_fts), and a large import rebuilds the table's secondary
    indexes once instead of updating them row by row (``storage.bulk_indexes``).
    """

    def __init__(self, services: CrmServices, uow: UnitOfWork, entity: str, path: Path, summary: ImportSummary,
                 progress: ProgressCallback | None, total: int, skip_invalid: bool):
        self.services = services
        self.service: EntityService[Any, Any] = services.entity_service(entity)
        self._uow = uow
        self._session = uow.session
        self.entity = entity
        self.path = str(path)
        self.summary = summary
        self.progress = progress
        self.total = total
        self.skip_invalid = skip_invalid
        self.refused: list[RefusedRow] = []
        self.table: str = self.service.model.__tablename__
        # the unit of work's own connection, inside its transaction: plain DBAPI calls for the bulk paths
        self._dbapi = sqlite_connection(uow.session.connection())
        # a segment's search index fill runs on a thread of its own (_fill_behind) while this thread
        # prepares the next segment; everything that uses the connection waits for it first (_settle)
        self._filling: threading.Thread | None = None
        self._fill_error: BaseException | None = None
        self._validator: _Validator | None = None
        self.company_ids: dict[str, str] = {}  # name_key -> id

    # -- driving ---------------------------------------------------------------

    # -- the connection (one statement at a time: a running fill is waited for) ----------------

    @property
    def dbapi(self) -> sqlite3.Connection:
        self._settle()
        return self._dbapi

    @property
    def session(self) -> "Session":
        self._settle()
        return self._session

    @property
    def uow(self) -> UnitOfWork:
        self._settle()
        return self._uow

    def _fill_behind(self, index: DeferredIndex, validator: _Validator) -> None:
        """Fill the search index of the rows inserted so far on a thread of its own. SQLite runs it
        without the GIL, so this thread prepares the next segment meanwhile (validation, companies
        known already, duplicates, the rows to insert) and the validating thread reads ahead; the
        first use of the connection waits for the fill (:meth:`_settle`)."""

        self._settle()  # one fill at a time (a segment that created nothing touched no connection)

        def fill() -> None:
            try:
                index.fill()
            except BaseException as exc:  # raised on the importing thread by _settle
                self._fill_error = exc

        self._validator = validator
        validator.open()
        self._filling = threading.Thread(target=fill, name="import-index", daemon=True)
        self._filling.start()

    def _settle(self, raise_error: bool = True) -> None:
        """Wait for a running fill (and quiet the validating thread: row-by-row statements follow)."""
        filling = self._filling
        if filling is None:
            return
        filling.join()
        self._filling = None
        if self._validator is not None:
            self._validator.quiet()
        error, self._fill_error = self._fill_error, None
        if error is not None and raise_error:
            raise error

    def run(self, rows: list[_Row], source: Iterator[_Row] | None = None) -> None:
        """Import ``rows`` (the whole file), or the rows of ``source`` (a file without record ids, read
        into ``rows`` segment by segment as the import goes)."""
        cache_size = self.dbapi.execute("PRAGMA cache_size").fetchone()[0]
        # a larger page cache for this transaction keeps the indexes being appended to in memory
        self.dbapi.execute("PRAGMA cache_size=-200000")
        try:
            self._run(rows, source)
        finally:  # also after a refusal or cancel: the pooled connection gets its usual cache back
            self._settle(raise_error=False)  # (a fill that failed has raised already, or is rolled back)
            self._dbapi.execute(f"PRAGMA cache_size={int(cache_size)}")
            self._dbapi.execute("DROP TABLE IF EXISTS temp.import_keys")
            self._dbapi.execute("DROP TABLE IF EXISTS temp.import_companies")

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

    def _run(self, rows: list[_Row], source: Iterator[_Row] | None) -> None:
        self._tick(0, force=True)
        updates: dict[int, dict[str, Any]] = {}
        fresh: list[int] | None = None  # streamed: not known before the file is read
        if source is None:
            given = self._check_ids(rows)
            existing = self._existing_by_id(given)
            self._ids_given = bool(given)  # else no row names a record (nor needs asking)
            # rows that update a live record by its id are cleaned one by one against it; all others
            # are new records (or name a deleted one), cleaned column by column
            if existing:
                fresh = []
                for i, row in enumerate(rows):
                    if row.problem is not None:
                        continue
                    record_id = row.record_id
                    current = existing.get(record_id) if record_id is not None else None
                    if current is not None and current["deleted_at"] is None:
                        updates[i] = current
                    else:
                        fresh.append(i)
            else:  # no row names a record of this database: every readable row is new
                fresh = [i for i, row in enumerate(rows) if row.problem is None]
        else:  # a streamed file has no id column (_import)
            self._ids_given = False
            self._existing_by_id([])  # no record is named: none was deleted either
        # the records from before the import: only they are "existing" matches (later segments
        # find the rows of earlier ones through the first-line dictionaries, as lines of the file)
        self._before_rowid = self.dbapi.execute(f"SELECT coalesce(max(rowid), 0) FROM {self.table}").fetchone()[0]
        self._had_live = self.dbapi.execute(
            f"SELECT 1 FROM {self.table} WHERE deleted_at IS NULL LIMIT 1").fetchone() is not None
        self._live: dict[str, dict[Any, tuple[str, str]]] | None = None
        if self._had_live:
            most = int(LIVE_KEYS_PER_ROW * self.total)
            live = self.dbapi.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {self.table} WHERE deleted_at IS NULL AND rowid <= ? LIMIT ?)",
                (self._before_rowid, most + 1)).fetchone()[0]
            if live <= most:
                self._live = self._live_keys()
        self._first: dict[str, dict[Any, int]] = {space: {} for space, _, _ in self._key_specs()}
        # per earlier segment: its new rows' lines and ids and the walked rows' outcomes, by first line
        self._earlier: list[tuple[list[int], list[str | None], dict[int, str]]] = []
        self._earlier_starts: list[int] = []
        if source is not None:
            plan: _Plan | None = self._stream_plan(rows, source)
        elif self.entity == "contact" and fresh is not None and len(fresh) > SEGMENT_ROWS:
            plan = self._list_plan(rows, fresh)
        else:  # companies and small files: one pass
            assert fresh is not None
            cols, errors = self._clean_columns([rows[i] for i in fresh])
            self._segment(rows, 0, len(rows), fresh, cols, errors, updates, None, None, True)
            plan = None
        if plan is not None:
            # segments of the file in line order, read and validated ahead on a thread (_Validator)
            with ExitStack() as stack:
                # one rebuild of the secondary indexes after the last segment, not one per segment;
                # its DDL and the trigger's run before the thread starts
                stack.enter_context(SuspendedIndexes(self.dbapi, self.table,
                                                     len(fresh) if fresh is not None else self.total))
                index = DeferredIndex(self.dbapi, self.table)
                validator = _Validator(self, rows, plan)
                validator.start()
                stack.callback(validator.finish)
                stack.callback(self._settle, False)  # (first: a fill still running ends before all else)
                while True:
                    segment = validator.next()
                    if segment.last and source is not None:
                        self.total = len(rows)  # the estimate (line breaks) gives way to the count
                    self._segment(rows, segment.a, segment.b, segment.fresh, segment.cols, segment.errors,
                                  updates, index, validator, segment.last)
                    if segment.last:
                        break
                self._settle()
                index.close()
        self._tick(self.total, force=True)
        s = self.summary
        self.uow.publish_after_commit("import.finished", {
            "entity": self.entity, "path": self.path, "created": s.created, "updated": s.updated,
            "unchanged": s.unchanged, "skipped": s.skipped, "refused": s.refused})

    @staticmethod
    def _list_plan(rows: list[_Row], fresh: list[int]) -> _Plan:
        """The segments of a file read whole."""
        starts, size = [], _segment_sizes()
        start = 0
        while start < len(rows):
            starts.append(start)
            start += next(size)
        bounds = list(zip(starts, [*starts[1:], len(rows)]))
        parts: list[list[int]] = [[] for _ in bounds]
        for i in fresh:
            parts[bisect_right(starts, i) - 1].append(i)

        def plan(enter: Callable[[], bool], leave: Callable[[], None]) -> Iterator[tuple[int, int, list[int], bool]]:
            for k, ((a, b), part) in enumerate(zip(bounds, parts)):
                yield a, b, part, k == len(bounds) - 1
        return plan

    @staticmethod
    def _stream_plan(rows: list[_Row], source: Iterator[_Row]) -> _Plan:
        """The segments of a file read as the import goes: the validating thread appends each
        segment's rows to ``rows`` (piece by piece, in windows) before validating them."""

        def plan(enter: Callable[[], bool], leave: Callable[[], None]) -> Iterator[tuple[int, int, list[int], bool]]:
            sizes = _segment_sizes()
            ahead = next(source, None)  # one row read ahead: a segment knows whether it is the last
            while True:
                a, b = len(rows), len(rows) + next(sizes)
                while ahead is not None and len(rows) < b:
                    if not enter():
                        return
                    try:
                        for _ in range(min(PIECE_ROWS, b - len(rows))):
                            rows.append(ahead)
                            ahead = next(source, None)
                            if ahead is None:
                                break
                    finally:
                        leave()
                b = len(rows)
                yield a, b, [i for i in range(a, b) if rows[i].problem is None], ahead is None
                if ahead is None:
                    return
        return plan

    def _segment(self, rows: list[_Row], a: int, b: int, fresh: list[int], cols: dict[str, list[Any]],
                 errors: dict[int, str], updates: dict[int, dict[str, Any]], index: DeferredIndex | None,
                 validator: _Validator | None, last: bool) -> None:
        """Rows ``a`` to ``b`` of the file (``fresh``: the new ones among them, ``cols`` their cleaned
        columns): refusals, companies, duplicates and updates in line order, then the inserts."""
        span = b - a
        self._tick(a + span // 4, force=True)
        # refusals in line order: the first one ends an all-or-nothing import with its line
        error_at = {fresh[j]: message for j, message in errors.items()}
        upd_values: dict[int, dict[str, Any]] = {}
        if error_at or updates or len(fresh) < span:
            for i in range(a, b):
                row = rows[i]
                if row.problem is not None:
                    self._refuse(row, row.problem)
                elif i in error_at:
                    self._refuse(row, error_at[i])
                elif i in updates:
                    try:
                        upd_values[i] = self._clean(row.fields, updates[i])
                    except ValidationError as exc:
                        self._refuse(row, str(exc))
        keep = [j for j in range(len(fresh)) if j not in errors] if errors else None
        if keep is not None:
            fresh = [fresh[j] for j in keep]
            cols = {name: [values[j] for j in keep] for name, values in cols.items()}
        if self.entity == "contact":
            fresh, cols = self._link_companies(rows, fresh, cols, upd_values)
        self._tick(a + span * 3 // 8, force=True)
        creates = self._sort_out(rows, fresh, cols, updates, upd_values, last=last)
        self._tick(a + span // 2, force=True)
        self._insert(rows, fresh, creates, cols, a + span // 2, b, index)
        if index is not None:
            if validator is not None:
                self._fill_behind(index, validator)  # the next segments are prepared meanwhile
            else:
                index.fill()
        self._tick(b, force=True)

    def _check_ids(self, rows: list[_Row]) -> list[str]:
        index = rows[0].index if rows else None
        if index is not None and "id" not in index and all(row.index is index for row in rows):
            return []  # plain CSV rows of a file without an id column
        seen: dict[str, int] = {}
        for row in rows:
            if row.problem is not None or row.record_id is None:
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
        """Column values by the service's own rules: only the row's fields for an existing record
        (a file without an e-mail column leaves e-mails alone)."""
        given = {k: fields[k] for k in _TEXT_FIELDS[self.entity] if k in fields}
        values = self.service.clean(self.session, given, SimpleNamespace(**current) if current else None)
        if self.entity == "contact" and "company" in fields:
            values["\0company"] = fields["company"].strip()
            values["company_id"] = None
        if "tags" in fields:
            values["tags"] = _tags(fields["tags"])
        return values

    def _clean_columns(self, rows: list[_Row]) -> tuple[dict[str, list[Any]], dict[int, str]]:
        """The new records' values column by column (``service.clean_columns``), plus the raw company
        names (``\0company``) and tag lists of the file; ``{position: message}`` for rows that break a rule."""
        index = rows[0].index if rows else None
        wanted = [*_TEXT_FIELDS[self.entity], "company", "tags"]
        if index is not None and all(row.index is index for row in rows):
            # plain CSV cells: each column straight from the cells ("id" is not among them), the
            # rows turned into columns by one zip (every row has the header's width)
            cells = [row.cells for row in rows]
            if len(set(map(len, cells))) == 1:
                by_index = list(zip(*cells))
                raw = {k: list(by_index[index[k]]) for k in wanted if k in index}
            else:
                raw = {k: [row.cells[index[k]] for row in rows] for k in wanted if k in index}
        else:  # vCards, or phone labels and full names sorted out per row: fields may vary per row
            present = {name for row in rows for name in row.fields}
            raw = {k: [row.fields.get(k) for row in rows] for k in wanted if k in present}
        given = {k: v for k, v in raw.items() if k in _TEXT_FIELDS[self.entity]}
        # (on the validating thread: the raw session, which column-wise cleaning does not query;
        # self.session would wait for the importing thread's fill)
        cols, errors = self.service.clean_columns(self._session, given, len(rows))
        if self.entity == "contact" and "company" in raw:
            names = cols["\0company"] = [(name or "").strip() for name in raw["company"]]
            cols["\0company_key"] = [normalize_name(n) if n else None for n in names]
        if "tags" in raw:
            cols["tags"] = [_tags(text) if text else [] for text in raw["tags"]]
        # the ids the new records will get (those of skipped rows go unused): made here, on the
        # validating thread of a segmented import, rather than while the database waits
        cols["\0ids"] = new_ids(len(rows))
        return cols, errors

    # -- companies ---------------------------------------------------------------------

    def _link_companies(self, rows: list[_Row], fresh: list[int], cols: dict[str, list[Any]],
                        upd_values: dict[int, dict[str, Any]]) -> tuple[list[int], dict[str, list[Any]]]:
        """Link each "Company" to the live company of that normalised name, creating missing ones.

        The distinct names of the file go into a temporary table; one join finds the existing
        companies (the oldest of a name wins), the missing ones are created in bulk.
        """
        names = cols.pop("\0company", None)
        keys = cols.pop("\0company_key", None)  # normalised by _clean_columns
        first_line: dict[str, tuple[int, str]] = {}
        if names is not None:
            assert keys is not None
            # the first position of each name in this segment, built in C (read backwards, the first
            # position is the last written); names linked in an earlier segment are known already
            at = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))
            for key in at.keys() - self.company_ids.keys():
                if key:
                    j = at[key]
                    first_line[key] = (rows[fresh[j]].line, names[j])
        for i, values in upd_values.items():
            name = values.get("\0company")
            if name:
                key = values["\0company_key"] = normalize_name(name)
                if key and (key not in first_line or rows[i].line < first_line[key][0]):
                    first_line[key] = (rows[i].line, name)
        if not first_line:
            for values in upd_values.values():
                values.pop("\0company", None)
                values.pop("\0company_key", None)
            if keys is not None:
                cols["company_id"] = list(map(self.company_ids.get, keys))
            return fresh, cols
        db = self.dbapi
        db.execute("DROP TABLE IF EXISTS temp.import_companies")
        db.execute("CREATE TEMP TABLE import_companies (name_key TEXT PRIMARY KEY, id TEXT)")
        db.executemany("INSERT INTO temp.import_companies (name_key) VALUES (?)", [(k,) for k in first_line])
        for key, ident in db.execute(
                "SELECT k.name_key, c.id FROM temp.import_companies k JOIN companies c "
                "ON c.name_key = k.name_key AND c.deleted_at IS NULL ORDER BY c.created_at DESC, c.id DESC"):
            self.company_ids[key] = ident  # DESC: the oldest company of that name is assigned last and wins
        creates, bad = [], {}
        for key, (line, name) in sorted(first_line.items(), key=lambda item: item[1][0]):
            if key in self.company_ids:
                continue
            try:
                values = self.services.companies.clean(self.session, {"name": name}, None)
            except ValidationError as exc:
                bad[key] = f"Company: {exc}"
                continue
            creates.append((key, values))
        if creates:
            for (key, values), ident in zip(creates, new_ids(len(creates))):
                values["id"] = self.company_ids[key] = ident
            self._bulk_insert("company", models.Company, [values for _, values in creates])
            self.summary.companies_created += len(creates)
        company_ids = self.company_ids
        if bad:  # the rows naming a company that cannot be made are refused, in line order
            refuse: dict[int, str] = {}
            for i, key in zip(fresh, keys or ()):
                if key in bad:
                    refuse[i] = bad[key]
            for i, values in upd_values.items():
                if values.get("\0company_key") in bad:
                    refuse[i] = bad[values["\0company_key"]]
            for i in sorted(refuse):
                self._refuse(rows[i], refuse[i])
                upd_values.pop(i, None)
            if keys is not None:
                kept = [j for j, i in enumerate(fresh) if i not in refuse]
                fresh = [fresh[j] for j in kept]
                keys = [keys[j] for j in kept]
                cols = {name: [values[j] for j in kept] for name, values in cols.items()}
        if keys is not None:
            cols["company_id"] = list(map(company_ids.get, keys))
        for values in upd_values.values():
            name = values.pop("\0company", None)
            key = values.pop("\0company_key", None)
            if name is not None:
                values["company_id"] = company_ids.get(key) if key else None
        return fresh, cols

    # -- duplicates ----------------------------------------------------------------

    def _key_specs(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        """(key space, key columns, the field a match is described by), strongest first."""
        if self.entity == "company":
            return [("name", ("name_key",), "name")]
        return [("email", ("email_key",), "email"), ("phone", ("phone_key",), "phone"),
                ("phone", ("mobile_key",), "mobile"), ("name", ("name_key", "company_id"), None)]

    def _meaning(self, space: str, field_name: str | None, value: Any) -> str:
        if self.entity == "company":
            return f"same name {value!r}"
        if space == "email":
            return f"same e-mail {value!r}"
        if space == "phone":
            return f"same phone number {value!r}"
        return "same name in the same company"

    def _sort_out(self, rows: list[_Row], fresh: list[int], cols: dict[str, list[Any]],
                  updates: dict[int, dict[str, Any]], upd_values: dict[int, dict[str, Any]],
                  last: bool = True) -> list[int]:
        """Walk the file in line order: skip duplicates (of a live record or an earlier line), update
        records named by id, and return the positions (in ``fresh``) of the records to create, whose
        ids are set in ``cols["id"]``."""
        specs = self._key_specs()
        count = len(fresh)
        # the key columns of the new rows: a tuple per key for two-column keys, the value otherwise
        key_cols: list[_KeyColumn] = []
        for space, names, field_name in specs:
            if len(names) == 1:
                column = cols.get(names[0]) or [None] * count
            else:
                a, b = (cols.get(n) or [None] * count for n in names)
                column = [(x, y) if x and y else None for x, y in zip(a, b)]
            key_cols.append((space, column, cols.get(field_name) if field_name else None))
        # the first line of every key in the file (rows named by id count too); within a key space
        # the earliest line of either column (a phone on line 9 repeats a mobile on line 3)
        first: dict[str, dict[Any, int]] = self._first  # carried over from the earlier segments
        lines = [rows[i].line for i in fresh]
        # the key spaces in which some row of this segment repeats a key (within the segment, of an
        # earlier segment, or of the space's other column): only their rows are compared one by one
        repeats: set[str] = set(first) if upd_values else set()
        for space, column, _ in key_cols:
            # built in C: read backwards, the first line of a key is the last one written
            seen = dict(zip(reversed(column), reversed(lines)))
            seen.pop(None, None)
            carried = first[space]
            common = seen.keys() & carried.keys()
            if common or len(seen) < len(column) - column.count(None):
                repeats.add(space)
            # keys met before keep their earlier line; only those are looked at one by one, the
            # rest go in by one update (no copy of everything carried so far)
            for key in common:
                if carried[key] <= seen[key]:
                    del seen[key]
            carried.update(seen)
        for i, values in upd_values.items():
            line = rows[i].line
            for space, names, _ in specs:
                parts = tuple(values.get(n) for n in names)
                key = parts[0] if len(parts) == 1 else (parts if all(parts) else None)
                if key and (key not in first[space] or line < first[space][key]):
                    first[space][key] = line
        existing = self._existing_matches(fresh, rows, key_cols)
        # only rows with a key met before (on an earlier line or in a live record) or with their own id
        # need a closer look; every other new row is simply created
        walk: set[int] = ({j for j, i in enumerate(fresh) if rows[i].record_id is not None}
                          if self._ids_given else set())
        positions = range(len(lines))
        for space, column, _ in key_cols:
            if space in repeats:
                # rows whose key came on an earlier line (no key, or the key's first line: "never")
                firsts = map(first[space].get, column, repeat(_NEVER))
                walk.update(compress(positions, map(lt, firsts, lines)))
            live = existing[space]
            if live:
                walk.update(compress(positions, map(live.__contains__, column)))
        made: list[str | None] = cols.pop("\0ids", [])  # by _clean_columns
        id_col: list[str | None] = made if len(made) == count else list(new_ids(count))
        outcome_ids: dict[int, str] = {}  # line -> the record it updated or duplicates (walked rows)

        def outcome(line: int) -> str:
            """The record line ``line`` created, updated or duplicates ("" if none)."""
            if line in outcome_ids:
                return outcome_ids[line]
            j = bisect_left(lines, line)  # lines ascend
            if j < count and lines[j] == line:
                return id_col[j] or ""
            k = bisect_right(self._earlier_starts, line) - 1  # a line of an earlier segment
            if k < 0:
                return ""
            their_lines, their_ids, their_outcomes = self._earlier[k]
            if line in their_outcomes:
                return their_outcomes[line]
            j = bisect_left(their_lines, line)
            return (their_ids[j] or "") if j < len(their_lines) and their_lines[j] == line else ""

        result = self._result
        order = sorted([(lines[j], 0, j) for j in walk] + [(rows[i].line, 1, i) for i in upd_values])
        for line, kind, j in order:  # line order: a row can only repeat an earlier one
            if kind == 1:
                current = updates[j]
                self._update(rows[j], upd_values[j], current)
                outcome_ids[line] = current["id"]
                continue
            record_id = rows[fresh[j]].record_id
            if record_id is None:
                found = None
                for space, column, shown in key_cols:
                    key = column[j]
                    if key is None:
                        continue
                    hit = existing[space].get(key)
                    meaning = self._meaning(space, None, shown[j] if shown else None)
                    if hit is not None:
                        ident, name = hit
                        found = ident, f"duplicate of existing {self.entity} {name!r} ({ident}): {meaning}"
                        break
                    earlier = first[space].get(key, line)
                    if earlier < line:
                        found = outcome(earlier), f"duplicate of line {earlier} of this file ({meaning})"
                        break
                if found is not None:
                    outcome_ids[line] = found[0]
                    id_col[j] = None
                    result(LineResult(line, "skipped", found[0], found[1]))
                continue
            if record_id in self._deleted_ids:
                result(LineResult(line, "skipped", record_id,
                                  f"{self.entity} {record_id} was deleted in this database; "
                                  "it is not brought back by an import"))
                outcome_ids[line] = record_id
                id_col[j] = None
                continue
            # an id this database has not seen: create the record under it (client-made ids)
            id_col[j] = record_id
        cols["id"] = id_col
        if not last and (lines or outcome_ids):  # what later segments may call a duplicate of
            self._earlier_starts.append(min(lines[:1] + list(outcome_ids)))
            self._earlier.append((lines, id_col, outcome_ids))
        return [j for j, ident in enumerate(id_col) if ident is not None]

    def _existing_matches(self, fresh: list[int], rows: list[_Row],
                          key_cols: list[_KeyColumn]) -> dict[str, dict[Any, tuple[str, str]]]:
        """Per key space: key -> (id, name) of the oldest live record with that key, for the keys of
        new rows without an id, by joins over a temporary key table (skipped when the table has no
        live record at all, as on a first import)."""
        found: dict[str, dict[Any, tuple[str, str]]] = {space: {} for space, _, _ in key_cols}
        if not self._had_live:
            return found
        if self._live is not None:  # few live records: their keys were read once (asked by key only)
            return self._live
        db = self.dbapi
        t = self.table
        checked = ([j for j, i in enumerate(fresh) if rows[i].record_id is None] if self._ids_given
                   else range(len(fresh)))
        before = f" AND c.rowid <= {int(self._before_rowid)}"
        if not checked:
            return found
        db.execute("DROP TABLE IF EXISTS temp.import_keys")
        db.execute("CREATE TEMP TABLE import_keys (line INTEGER PRIMARY KEY, email_key TEXT, "
                   "phone_key TEXT, mobile_key TEXT, name_key TEXT, company_id TEXT)")
        if self.entity == "company":
            [(_, names, _)] = key_cols
            db.executemany("INSERT INTO temp.import_keys (line, name_key) VALUES (?, ?)",
                           [(j, names[j]) for j in checked])
            sql = [("name", f"SELECT c.id, c.name, c.name_key, NULL FROM temp.import_keys k JOIN companies c "
                            f"ON c.name_key = k.name_key AND c.deleted_at IS NULL{before} ORDER BY c.created_at, c.id")]
        else:
            email, phone, mobile, name = (column for _, column, _ in key_cols)
            db.executemany("INSERT INTO temp.import_keys VALUES (?, ?, ?, ?, ?, ?)",
                           [(j, email[j], phone[j], mobile[j], *(name[j] or (None, None))) for j in checked])
            label = "trim(coalesce(c.first_name,'') || ' ' || coalesce(c.last_name,''))"
            order = f"{before} ORDER BY c.created_at, c.id"
            sql = [("email", f"SELECT c.id, {label}, c.email_key, NULL FROM temp.import_keys k JOIN {t} c "
                             f"ON c.email_key = k.email_key AND c.deleted_at IS NULL{order}")]
            for mine in ("phone_key", "mobile_key"):
                for theirs in ("phone_key", "mobile_key"):
                    sql.append(("phone", f"SELECT c.id, {label}, c.{theirs}, NULL FROM temp.import_keys k "
                                         f"JOIN {t} c ON c.{theirs} = k.{mine} AND c.deleted_at IS NULL{order}"))
            sql.append(("name", f"SELECT c.id, {label}, c.name_key, c.company_id FROM temp.import_keys k "
                                f"JOIN {t} c ON c.company_id = k.company_id AND c.name_key = k.name_key "
                                f"AND c.deleted_at IS NULL{order}"))
        for space, statement in sql:
            bucket = found[space]
            for ident, label_, key, extra in db.execute(statement):
                bucket.setdefault(key if extra is None else (key, extra), (ident, label_))
        return found

    def _live_keys(self) -> dict[str, dict[Any, tuple[str, str]]]:
        """Per key space: key -> (id, name) of the oldest live record from before the import with that
        key, read in one pass over the live records (for a table that has few against the file;
        :meth:`_existing_matches` joins otherwise). The same answers as those joins: in the phone
        space a record's phone number wins over another record's mobile, as the joins order them."""
        found: dict[str, dict[Any, tuple[str, str]]] = {space: {} for space, _, _ in self._key_specs()}
        where = "c.deleted_at IS NULL AND c.rowid <= ? ORDER BY c.created_at, c.id"
        if self.entity == "company":
            bucket = found["name"]
            for ident, name, key in self.dbapi.execute(
                    f"SELECT c.id, c.name, c.name_key FROM companies c WHERE {where}", (self._before_rowid,)):
                if key is not None:
                    bucket.setdefault(key, (ident, name))
            return found
        label = "trim(coalesce(c.first_name,'') || ' ' || coalesce(c.last_name,''))"
        email, phone, name = found["email"], found["phone"], found["name"]
        mobiles: list[tuple[str, tuple[str, str]]] = []
        for ident, label_, email_key, phone_key, mobile_key, name_key, company_id in self.dbapi.execute(
                f"SELECT c.id, {label}, c.email_key, c.phone_key, c.mobile_key, c.name_key, c.company_id "
                f"FROM {self.table} c WHERE {where}", (self._before_rowid,)):
            hit = (ident, label_)
            if email_key is not None:
                email.setdefault(email_key, hit)
            if phone_key is not None:
                phone.setdefault(phone_key, hit)
            if mobile_key is not None:
                mobiles.append((mobile_key, hit))
            if name_key is not None and company_id is not None:
                name.setdefault((name_key, company_id), hit)
        for mobile_key, hit in mobiles:  # after every phone: a phone number wins over a mobile
            phone.setdefault(mobile_key, hit)
        return found

    # -- writing ----------------------------------------------------------------------

    def _existing_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        self._deleted_ids: set[str] = set()
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
                if record["deleted_at"] is not None:
                    self._deleted_ids.add(record["id"])
        return out

    def _update(self, row: _Row, values: dict[str, Any], current: dict[str, Any]) -> None:
        """Change only the fields that differ from the stored record."""
        changes = {}
        for name, value in values.items():
            if name.endswith("_key") or name.startswith("\0"):
                continue
            old: Any = current.get(name)  # a stored column value (tags: a list of names)
            if name == "tags":
                if [t.casefold() for t in value] != [t.casefold() for t in old]:
                    changes[name] = value
            elif old != value:
                changes[name] = value
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

    def _insert(self, rows: list[_Row], fresh: list[int], creates: list[int], cols: dict[str, list[Any]],
                progress_base: int, progress_end: int, index: DeferredIndex | None = None) -> None:
        """Create the new records: the chosen positions of every column, in file order."""
        if not creates:
            return
        tags = cols.pop("tags", None)
        names = ["id", *(n for n in cols if n != "id" and not n.startswith("\0")
                         and not (n in ("owner_id", "team_id") and not any(cols[n])))]
        params = list(zip(*[cols[n] for n in names]))  # one tuple per row, made in C
        if len(creates) != len(params):
            params = [params[j] for j in creates]
        ids = [p[0] for p in params]
        tag_links = [(ids[k], tags[j]) for k, j in enumerate(creates) if tags[j]] if tags is not None else []

        def tick(done: int) -> None:
            self._tick(progress_base + min(done, len(params)) * (progress_end - progress_base) // max(1, len(params)),
                       force=True)

        self._bulk_insert_columns(self.entity, self.service.model, names, params, tag_links, tick, index)
        self.summary.lines.extend(map(LineResult, [rows[fresh[j]].line for j in creates], repeat("created"), ids))
        self.summary.created += len(creates)

    def _bulk_insert(self, entity: str, model: type[SyncedRow], rows: list[dict[str, Any]]) -> None:
        """Insert rows (column values with ``id``) as :meth:`_bulk_insert_columns` does."""
        if not rows:
            return
        names = list(dict.fromkeys(n for values in rows for n in values if not n.startswith("\0")))
        self._bulk_insert_columns(entity, model, names, [tuple(v.get(n) for n in names) for v in rows])

    def _bulk_insert_columns(self, entity: str, model: type[SyncedRow], names: list[str],
                             params: list[tuple[Any, ...]], tag_links: Sequence[tuple[str, list[str]]] = (),
                             tick: Callable[[int], None] | None = None,
                             shared_index: DeferredIndex | None = None) -> None:
        """Insert rows with their sync columns, tags, search index, audit entries and changes.
        Storage stamps the sync columns and records the changes
        (``storage.changes.insert_synced_columns``), one batch per chunk."""
        if not params:
            return
        table: str = model.__tablename__
        # one set-based fill of the search index instead of a trigger per row (a segmented import's
        # own index is filled by the caller after each segment)
        index = shared_index or DeferredIndex(self.dbapi, table)
        tag_names = dict(tag_links)
        with SuspendedIndexes(self.dbapi, table, len(params) if shared_index is None else 0):
            for start in range(0, len(params), CHUNK):
                part = params[start:start + CHUNK]
                extras = ({p[0]: {"tags": (None, tag_names[p[0]])} for p in part if p[0] in tag_names}
                          if tag_names else None)
                insert_synced_columns(self.uow.transaction, model, names, part, audit_action="import",
                                      change_extras=extras, audit_details={"file": Path(self.path).name})
                if tick is not None:
                    tick(start + CHUNK)
        if tag_links:
            ids = self._tag_ids({n for _, names_ in tag_links for n in names_})
            link = models.contact_tags if entity == "contact" else models.company_tags
            fk = f"{entity}_id"
            links = {(rid, ids[n]) for rid, names_ in tag_links for n in names_ if n in ids}
            self.dbapi.executemany(f"INSERT INTO {link.name} ({fk}, tag_id) VALUES (?, ?)", sorted(links))
        if shared_index is None:
            index.close()

    def _tag_ids(self, names: set[str]) -> dict[str, str]:
        by_key: dict[str, str] = {}
        for tag in self.services.tags.ensure(self.session, sorted(names)):
            self.session.flush()
            by_key[tag.name_key] = tag.id
        # each name as the file spells it -> its tag, matched by the key ensure() stored it under
        # (a name that is only control characters names no tag)
        out: dict[str, str] = {}
        for n in names:
            cleaned = self.services.tags.clean_name(n)
            if cleaned is not None:
                out[n] = by_key[cleaned[1]]
        return out


def _tags(text: str) -> list[str]:
    # "* myContacts", "* starred": Google's own system labels, not the user's
    return sorted({t for t in TAG_SEPARATOR.split(text.strip()) if t and not t.startswith("*")}, key=str.casefold)
