"""CSV files of contacts and companies: reading (with header guessing) and writing.

Reading accepts UTF-8 with or without a byte-order mark, ``,`` or ``;`` as the
delimiter (whichever the header line uses), quoted fields with line breaks, and
header names as address books and spreadsheets spell them ("First Name",
"E-mail", "Company", ...). Anything structurally wrong raises
:class:`~crm_desktop.errors.FileFormatError` with the 1-based line number.

Writing uses the same friendly header names (so an export maps back by itself
on import), ``,`` as delimiter and a byte-order mark, because that is what makes
spreadsheet programs open UTF-8 correctly.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from crm_desktop.errors import FileFormatError

log = logging.getLogger(__name__)

#: record fields an import may fill, per entity, in export column order
FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("id", "first_name", "last_name", "email", "phone", "mobile", "job_title", "company",
                "street", "city", "postal_code", "country", "tags", "notes"),
    "company": ("id", "name", "website", "industry", "email", "phone", "street", "city", "postal_code",
                "country", "tags", "notes"),
}

#: the header each field gets on export
EXPORT_HEADERS: dict[str, str] = {
    "id": "Id", "first_name": "First Name", "last_name": "Last Name", "email": "E-mail", "phone": "Phone",
    "mobile": "Mobile", "job_title": "Job Title", "company": "Company", "street": "Street", "city": "City",
    "postal_code": "Postal Code", "country": "Country", "tags": "Tags", "notes": "Notes", "name": "Name",
    "website": "Website", "industry": "Industry",
}

# Header spellings, normalised by _header_key (lower case, letters and digits only).
# Order matters only for readability; each alias maps to one field.
_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "crmid", "recordid", "uid"),
    "first_name": ("firstname", "givenname", "first", "forename", "vorname", "prenom"),
    "last_name": ("lastname", "familyname", "surname", "last", "nachname", "nom"),
    "email": ("email", "emailaddress", "mail", "email1", "emailaddress1", "primaryemail", "e"),
    "phone": ("phone", "telephone", "phonenumber", "workphone", "businessphone", "officephone", "tel",
              "telefon", "phone1"),
    "mobile": ("mobile", "mobilephone", "cell", "cellphone", "mobilenumber", "handy", "phone2"),
    "job_title": ("jobtitle", "title", "position", "role", "function"),
    "company": ("company", "companyname", "organization", "organisation", "org", "account", "accountname",
                "employer", "firma"),
    "street": ("street", "address", "streetaddress", "address1", "businessstreet", "strasse"),
    "city": ("city", "town", "locality", "businesscity", "ort", "stadt"),
    "postal_code": ("postalcode", "zip", "zipcode", "postcode", "plz", "businesspostalcode"),
    "country": ("country", "countryregion", "businesscountry", "businesscountryregion", "land"),
    "tags": ("tags", "tag", "categories", "labels", "groups"),
    "notes": ("notes", "note", "comments", "comment", "description", "remarks"),
    "name": ("name", "companyname", "company", "organization", "organisation", "accountname", "firma"),
    "website": ("website", "web", "url", "homepage", "webpage", "site"),
    "industry": ("industry", "sector", "branche"),
}

#: separator of several tags in one cell
TAG_SEPARATOR = re.compile(r"\s*[,;|]\s*")


def _header_key(header: str) -> str:
    decomposed = unicodedata.normalize("NFKD", header)
    return "".join(c for c in decomposed.casefold() if c.isalnum())


def guess_mapping(headers: Sequence[str], entity: str) -> dict[str, str | None]:
    """Header -> field for each header (None: not imported). A field is used at most once."""
    fields = FIELDS[entity]
    mapping: dict[str, str | None] = {}
    taken: set[str] = set()
    for header in headers:
        key = _header_key(header)
        found = None
        for field in fields:
            if field not in taken and (key == _header_key(field) or key in _ALIASES.get(field, ())):
                found = field
                break
        mapping[header] = found
        if found:
            taken.add(found)
    if entity == "contact" and "first_name" not in taken and "last_name" not in taken:
        # "Name" / "Full Name" holds both parts: the importer splits it at the last space
        for header in headers:
            if mapping[header] is None and _header_key(header) in ("name", "fullname", "displayname", "contact"):
                mapping[header] = "full_name"
                break
    return mapping


def check_mapping(mapping: dict[str, str | None], headers: Sequence[str], entity: str, path: str) -> None:
    """Refuse a mapping override that names unknown headers or fields, or a field twice."""
    allowed = set(FIELDS[entity]) | ({"full_name"} if entity == "contact" else set())
    seen: dict[str, str] = {}
    for header, field in mapping.items():
        if header not in headers:
            raise FileFormatError(path, 1, f"mapping names column {header!r}, which the file does not have "
                                           f"(columns: {', '.join(headers)})")
        if field is None:
            continue
        if field not in allowed:
            raise FileFormatError(path, 1, f"mapping sends column {header!r} to unknown field {field!r} "
                                           f"(fields: {', '.join(sorted(allowed))})")
        if field in seen:
            raise FileFormatError(path, 1, f"columns {seen[field]!r} and {header!r} are both mapped to {field!r}")
        seen[field] = header


@dataclass
class CsvDialect:
    delimiter: str
    encoding: str


def read_text(path: Path) -> str:
    """The file as text; UTF-8 (BOM optional). Names the line of the first undecodable byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileFormatError(str(path), line, f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                                               "save the file as UTF-8 CSV and try again") from None


def sniff_delimiter(first_line: str) -> str:
    """``;`` when the header line has more of them than commas (European spreadsheets), else ``,``."""
    return ";" if first_line.count(";") > first_line.count(",") else ","


class CsvReader:
    """Rows of a CSV file as ``(line, {header: value})``, strictly checked.

    ``line`` is the 1-based line where the row starts (quoted line breaks make
    rows span lines). A row with more cells than the header, an unclosed
    quote, or a duplicated header is a :class:`FileFormatError`.
    """

    def __init__(self, path: Path, text: str | None = None):
        self.path = Path(path)
        self._text = read_text(self.path) if text is None else text
        first_line = self._text.split("\n", 1)[0]
        if not first_line.strip():
            raise FileFormatError(str(self.path), 1, "the first line must be a header row naming the columns")
        self.delimiter = sniff_delimiter(first_line)
        reader = self._reader()
        try:
            self.headers = [h.strip() for h in next(reader)]
        except csv.Error as exc:
            raise FileFormatError(str(self.path), 1, f"bad header row: {exc}") from None
        seen: set[str] = set()
        for header in self.headers:
            if not header:
                raise FileFormatError(str(self.path), 1, "a column has an empty header; name every column")
            if header in seen:
                raise FileFormatError(str(self.path), 1, f"column {header!r} appears twice in the header")
            seen.add(header)

    def _reader(self) -> "csv._reader":
        return csv.reader(io.StringIO(self._text, newline=""), delimiter=self.delimiter, strict=True)

    def count_rows(self) -> int:
        """Data rows in the file (a fast pass; also finds quoting errors before anything is written)."""
        reader = self._reader()
        count = 0
        try:
            next(reader)
            for row in reader:
                if any(cell.strip() for cell in row):
                    count += 1
        except csv.Error as exc:
            raise FileFormatError(str(self.path), reader.line_num, f"malformed CSV: {exc}") from None
        return count

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        reader = self._reader()
        width = len(self.headers)
        next(reader)
        start = reader.line_num + 1
        try:
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in cells):
                    continue  # blank lines between rows are harmless
                if len(cells) > width:
                    extra = len(cells) - width
                    raise FileFormatError(str(self.path), line,
                                          f"has {len(cells)} cells but the header has {width} columns "
                                          f"({extra} too many; is a value with {self.delimiter!r} missing quotes?)")
                # fewer cells than headers: spreadsheets drop trailing empty cells
                yield line, {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(self.headers)}
        except csv.Error as exc:
            raise FileFormatError(str(self.path), reader.line_num, f"malformed CSV: {exc}") from None


def write_csv(stream, fields: Sequence[str], rows: Iterable[dict[str, object]]) -> int:
    """Write rows (field -> value) under the friendly headers; returns the number written."""
    writer = csv.writer(stream, delimiter=",", lineterminator="\r\n")
    writer.writerow([EXPORT_HEADERS[f] for f in fields])
    count = 0
    for row in rows:
        writer.writerow(["" if row.get(f) is None else row.get(f) for f in fields])
        count += 1
    return count
