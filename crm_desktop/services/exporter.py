"""Export contacts and companies to CSV or vCard (docs/import-export.md).

Every exported row carries the record's ``id`` so that the file, edited in a
spreadsheet, can be imported back as updates. Rows are read in name order in
one read transaction (a consistent snapshot under WAL) and streamed through
:func:`crm_desktop.files.atomic_output` to a temporary file beside the target,
which replaces the target only when it is complete: an interrupted export never
leaves half a file under the real name, and no export ever writes over the
database, its backups or any other file the app owns.

Control characters that older data may still hold are removed on the way out (the rule of
``clean_text``), and CSV cells that a spreadsheet would run as formulas are defused
(``csv_format.defuse_cell``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import text

from crm_desktop.domain.validation import has_controls, strip_controls
from crm_desktop.errors import FileFormatError
from crm_desktop.files import atomic_output, check_output
from crm_desktop.services.csv_format import FIELDS, write_csv
from crm_desktop.services.importer import FORMATS, normalize_entity
from crm_desktop.services.vcard_format import write_vcards

if TYPE_CHECKING:
    from crm_desktop.services import CrmServices

log = logging.getLogger(__name__)

ExportProgress = Callable[[int, int], "bool | None"]

#: the SQL of each file column (csv_format.FIELDS, from the field table): the contact's company
#: is its name, tags are their names; every other column is the record's own
_SQL = {"company": "c.name", "tags": "{tags}"}
_COLUMNS = {entity: ", ".join(_SQL.get(f, f"r.{f}") for f in fields) for entity, fields in FIELDS.items()}


def _query(entity: str) -> str:
    table, link = ("contacts", "contact_tags") if entity == "contact" else ("companies", "company_tags")
    tags = (f"(SELECT group_concat(t.name, char(31)) FROM {link} l JOIN tags t ON t.id = l.tag_id "
            f"WHERE l.{entity}_id = r.id AND t.deleted_at IS NULL)")
    join = "LEFT JOIN companies c ON c.id = r.company_id AND c.deleted_at IS NULL" if entity == "contact" else ""
    return (f"SELECT {_COLUMNS[entity].format(tags=tags)} FROM {table} r {join} "
            f"WHERE r.deleted_at IS NULL ORDER BY r.name_key, r.id")


def owned_paths(services: CrmServices) -> list[Path]:
    """The files of the home holding ``services``' database, which no export may replace."""
    from crm_desktop.paths import Home

    return Home(Path(services.db.path).resolve().parent).owned_paths()


def export_file(services: CrmServices, entity: str, path: Path, *, fmt: str = "csv",
                progress: ExportProgress | None = None, force: bool = True) -> int:
    """Write every live record of ``entity`` to ``path``; returns how many. ``progress`` returning
    False cancels (the target is then left as it was).

    ``force=False`` refuses to replace an existing file (the command line without ``--force``);
    the default suits a save dialog that has already asked. The database and every other file
    the app owns are refused either way (:class:`crm_desktop.files.OutputError`)."""
    entity = normalize_entity(entity)
    path = Path(path)
    if fmt not in FORMATS:
        raise FileFormatError(str(path), None, f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if not path.parent.is_dir():
        raise FileFormatError(str(path), None, f"folder {path.parent} does not exist")
    fields = FIELDS[entity]
    protected = owned_paths(services)
    check_output(path, force=force, protected=protected)
    count = 0
    try:
        with services.db.read_sessions() as session, session.begin():
            conn = session.connection()
            table = "contacts" if entity == "contact" else "companies"
            total = int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE deleted_at IS NULL")).scalar_one())
            # about every 1 % (at most every 1000 rows): a progress bar moves and Cancel is heard soon
            every = max(1, min(1000, total // 100))
            if progress is not None and progress(0, total) is False:
                raise _Cancelled()

            def rows() -> Iterator[dict[str, Any]]:
                nonlocal count
                for values in conn.execute(text(_query(entity))):
                    row = dict(zip(fields, values))
                    if row["tags"]:
                        row["tags"] = ", ".join(sorted(row["tags"].split("\x1f"), key=str.casefold))
                    # older data may hold control characters (see clean_text): one look per row
                    if has_controls("".join(v for v in row.values() if type(v) is str)):
                        row = {name: strip_controls(v, name) if type(v) is str else v for name, v in row.items()}
                    count += 1
                    if progress is not None and count % every == 0 and progress(count, total) is False:
                        raise _Cancelled()
                    yield row

            # utf-8-sig: the byte-order mark makes spreadsheet programs read UTF-8 correctly
            encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
            with atomic_output(path, force=force, protected=protected, encoding=encoding, newline="") as stream:
                if fmt == "csv":
                    write_csv(stream, fields, rows())
                else:
                    write_vcards(stream, entity, rows())
    except _Cancelled:
        log.info("export to %s cancelled", path)
        return 0
    if progress is not None:
        progress(count, count)
    log.info("exported %d %s records to %s", count, entity, path)
    return count


class _Cancelled(Exception):
    pass
