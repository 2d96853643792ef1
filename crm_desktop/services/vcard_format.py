"""vCard files (2.1, 3.0 and 4.0; written as 3.0) of contacts and companies, read and written with ``vobject``.

A file holds any number of cards. Reading splits the file into cards itself
(so every card, and every error, has its 1-based line number), checks that each
content line looks like ``NAME[;PARAMS]:VALUE``, and lets vobject parse the
card. The record's id travels in ``X-CRM-ID`` (not ``UID``: other address
books put their own ids there, which must not be mistaken for ours).

Apple Contacts and iCloud write grouped properties (``item1.EMAIL``) labelled by
``item1.X-ABLabel``; the label counts like a TYPE (``_$!<Mobile>!$_`` -> mobile), and a
property marked preferred (``TYPE=pref`` or ``PREF=1``) wins over the others.

Fields: N/FN -> first/last name, EMAIL, TEL (``TYPE=cell`` -> mobile), ORG ->
company, TITLE -> job title, ADR -> street/city/postal code/country, URL ->
website (companies), CATEGORIES -> tags, NOTE -> notes.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import vobject
from vobject.base import Component, ContentLine

from crm_desktop.errors import FileFormatError
from crm_desktop.services.csv_format import read_text

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

log = logging.getLogger(__name__)

ID_PROPERTY = "X-CRM-ID"
_CONTENT_LINE = re.compile(r"^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)?(?:;[^:]*)?:", re.ASCII)


def _cards(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """(line where the card begins, the card's text) for each BEGIN:VCARD ... END:VCARD."""
    start: int | None = None
    lines: list[str] = []
    last = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        last = number
        line = raw.rstrip("\r")
        upper = line.strip().upper()
        if start is None:
            if not line.strip():
                continue
            if upper != "BEGIN:VCARD":
                raise FileFormatError(str(path), number, f"expected BEGIN:VCARD, found {line[:40]!r}")
            start, lines = number, [line]
            continue
        if upper == "BEGIN:VCARD":
            raise FileFormatError(str(path), number, f"a card begins before the card of line {start} ended "
                                                     "(END:VCARD missing)")
        lines.append(line)
        if line[:1] in (" ", "\t"):
            continue  # folded continuation of the previous line
        if upper == "END:VCARD":
            yield start, "\r\n".join(lines) + "\r\n"
            start, lines = None, []
            continue
        if line.strip() and not _CONTENT_LINE.match(line):
            raise FileFormatError(str(path), number, f"is not a vCard line NAME:VALUE: {line[:40]!r}")
    if start is not None:
        raise FileFormatError(str(path), last, f"the card that begins on line {start} has no END:VCARD")


#: the vCard versions read (RFC 2426 is 3.0, RFC 6350 is 4.0; 2.1 is the older versit format)
VERSIONS = ("2.1", "3.0", "4.0")


def check_version(path: Path, line: int, card: Component) -> None:
    """Refuse a card without VERSION or with one this reader does not know: its properties may
    mean something else, and guessing would import garbled records."""
    versions = _props(card, "version")
    if not versions:
        raise FileFormatError(str(path), line, f"the card that begins here has no VERSION line; crm-desktop "
                                               f"reads vCard {', '.join(VERSIONS)}")
    value = _text(versions[0].value)
    if len(versions) > 1 or value not in VERSIONS:
        shown = ", ".join(repr(_text(v.value)) for v in versions)
        raise FileFormatError(str(path), line, f"the card that begins here has VERSION {shown}; crm-desktop "
                              f"reads vCard {', '.join(VERSIONS)} only")


def count_cards(path: Path, text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip().upper() == "BEGIN:VCARD")


def _props(card: Component, name: str) -> list[ContentLine]:
    """The card's properties called ``name`` (lower case); a vCard holds only content lines."""
    return [p for p in card.contents.get(name, ()) if isinstance(p, ContentLine)]


def _first(card: Component, name: str) -> ContentLine | None:
    items = _props(card, name.lower())
    return items[0] if items else None


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value if v)
    return str(value or "").strip()


def _types(prop: ContentLine) -> set[str]:
    types: set[str] = set()
    for value in prop.params.get("TYPE", []):
        types.update(t.strip().strip('"').lower() for t in value.split(","))
    return types


def _tel_value(prop: ContentLine) -> str:
    value = _text(prop.value)
    return value[4:] if value.lower().startswith("tel:") else value


#: properties that carry no record data (or that the fields above consume as a whole)
_BOOKKEEPING = {"version", "prodid", "rev", "uid", "x-abuid", "x-abshowas", "x-ablabel", "kind", "n", "fn",
                "org", "title", "categories", "note", "x-crm-id", "x-abadr", "x-apple-subadministrativearea",
                "x-apple-sublocality", "x-addressing-grammar", "x-ms-ol-default-postal-address", "x-ms-carddav",
                "x-evolution-file-as", "x-mozilla-html", "x-phonetic-first-name", "x-phonetic-last-name"}
_MOBILE_LABELS = {"cell", "mobile", "iphone", "handy", "mobil", "portable", "cellulare", "móvil", "movil"}


def _labels(card: Component) -> dict[str, str]:
    """Apple's ``itemN.X-ABLabel`` labels by group (``_$!<Mobile>!$_`` -> ``mobile``)."""
    out: dict[str, str] = {}
    for label in _props(card, "x-ablabel"):
        group = label.group
        if group:
            text = _text(label.value)
            if text.startswith("_$!<") and text.endswith(">!$_"):
                text = text[4:-4]
            out[group.lower()] = text.casefold()
    return out


def _kinds(prop: ContentLine, labels: dict[str, str]) -> set[str]:
    """TYPE parameters (3.0 and 4.0 spellings) plus the Apple label of the property's group."""
    kinds = _types(prop)
    group = getattr(prop, "group", None)
    if group and group.lower() in labels:
        kinds.add(labels[group.lower()])
    if "PREF" in prop.params:  # vCard 4: PREF=1
        kinds.add("pref")
    return kinds


def _preferred(props: list[ContentLine], labels: dict[str, str]) -> ContentLine | None:
    """The property marked preferred, else the first."""
    for prop in props:
        if "pref" in _kinds(prop, labels):
            return prop
    return props[0] if props else None


def card_fields(card: Component, entity: str, unused: "Counter[str] | None" = None) -> dict[str, str]:
    """The record fields (as text) one parsed card gives, for ``entity`` contact or company.

    Properties with data that no field takes (a second e-mail, BDAY, NICKNAME, ...)
    are counted in ``unused`` by name, so an import can say what it left out.
    """
    out: dict[str, str] = {}
    labels = _labels(card)
    used: set[int] = set()
    ident = _first(card, ID_PROPERTY)
    if ident is not None:
        out["id"] = _text(ident.value)
    emails = _props(card, "email")
    email = _preferred(emails, labels)
    if email is not None:
        out["email"] = _text(email.value)
        used.add(id(email))
    tels = _props(card, "tel")
    for tel in sorted(tels, key=lambda t: "pref" not in _kinds(t, labels)):
        kinds = _kinds(tel, labels)
        kind = "mobile" if kinds & _MOBILE_LABELS and entity == "contact" else "phone"
        if kind not in out:
            out[kind] = _tel_value(tel)
            used.add(id(tel))
    adrs = _props(card, "adr")
    adr = _preferred(adrs, labels)
    # vobject parses ADR and N into objects (its stubs call every value ``str``)
    if adr is not None and isinstance(adr.value, vobject.vcard.Address):
        out["street"] = _text(adr.value.street)
        out["city"] = _text(adr.value.city)
        out["postal_code"] = _text(adr.value.code)
        out["country"] = _text(adr.value.country)
        used.add(id(adr))
    categories = _first(card, "categories")
    if categories is not None:
        out["tags"] = ", ".join(_text(v) for v in (categories.value if isinstance(categories.value, list)
                                                   else [categories.value]) if _text(v))
    note = _first(card, "note")
    if note is not None:
        out["notes"] = _text(note.value)
    org = _first(card, "org")
    org_name = _text(org.value[0] if isinstance(org.value, list) and org.value else org.value) if org else ""
    fn = _first(card, "fn")
    if entity == "company":
        out["name"] = org_name or (_text(fn.value) if fn else "")
        url = _first(card, "url")
        if url is not None:
            out["website"] = _text(url.value)
            used.add(id(url))
    else:
        n = _first(card, "n")
        if n is not None and isinstance(n.value, vobject.vcard.Name):
            out["first_name"] = _text(n.value.given)
            out["last_name"] = _text(n.value.family)
        if not out.get("first_name") and not out.get("last_name") and fn is not None:
            out["full_name"] = _text(fn.value)
        if org_name:
            out["company"] = org_name
        title = _first(card, "title")
        if title is not None:
            out["job_title"] = _text(title.value)
    if unused is not None:
        for name, props in card.contents.items():
            if name in _BOOKKEEPING:
                continue
            for prop in props:
                if id(prop) not in used and _text(getattr(prop, "value", "")):
                    unused[name.upper()] += 1
    return out


class VCardReader:
    """Cards of a vCard file as ``(line, fields)``; :class:`FileFormatError` on malformed cards."""

    def __init__(self, path: Path, entity: str, text: str | None = None):
        self.path = Path(path)
        self.entity = entity
        self._text = read_text(self.path) if text is None else text
        self.headers: list[str] = []  # vCards have fixed fields: nothing to map
        #: property name -> cards whose property of that name no field took (after iterating)
        self.unused: Counter[str] = Counter()

    def count_rows(self) -> int:
        return count_cards(self.path, self._text)

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        for line, card_text in _cards(self.path, self._text):
            try:
                card = vobject.readOne(card_text)
            except Exception as exc:  # vobject raises several kinds; all mean a bad card
                raise FileFormatError(str(self.path), line, f"the card that begins here is malformed: {exc}") from None
            check_version(self.path, line, card)
            yield line, card_fields(card, self.entity, self.unused)


def contact_card(row: dict[str, object]) -> str:
    """A vCard 3.0 for a contact row (export field names)."""
    card = vobject.vCard()
    first, last = str(row.get("first_name") or ""), str(row.get("last_name") or "")
    card.add("n").value = vobject.vcard.Name(family=last, given=first)
    card.add("fn").value = " ".join(p for p in (first, last) if p) or "-"
    _common(card, row)
    if row.get("mobile"):
        tel = card.add("tel")
        tel.value = str(row["mobile"])
        tel.type_param = "CELL"
    if row.get("company"):
        card.add("org").value = [str(row["company"])]
    if row.get("job_title"):
        card.add("title").value = str(row["job_title"])
    return card.serialize()


def company_card(row: dict[str, object]) -> str:
    """A vCard 3.0 for a company row: ORG and FN carry the name."""
    card = vobject.vCard()
    name = str(row.get("name") or "")
    card.add("n").value = vobject.vcard.Name(family="", given="")
    card.add("fn").value = name
    card.add("org").value = [name]
    _common(card, row)
    if row.get("website"):
        card.add("url").value = str(row["website"])
    return card.serialize()


def _common(card: Component, row: dict[str, object]) -> None:
    card.add(ID_PROPERTY.lower()).value = str(row["id"])
    if row.get("email"):
        email = card.add("email")
        email.value = str(row["email"])
        email.type_param = "INTERNET"
    if row.get("phone"):
        tel = card.add("tel")
        tel.value = str(row["phone"])
        tel.type_param = "WORK"
    if any(row.get(k) for k in ("street", "city", "postal_code", "country")):
        card.add("adr").value = vobject.vcard.Address(
            street=str(row.get("street") or ""), city=str(row.get("city") or ""),
            code=str(row.get("postal_code") or ""), country=str(row.get("country") or ""))
    if row.get("tags"):
        card.add("categories").value = [t for t in str(row["tags"]).split(", ") if t]
    if row.get("notes"):
        card.add("note").value = str(row["notes"])


def write_vcards(stream: SupportsWrite[str], entity: str, rows: Iterable[dict[str, object]]) -> int:
    make = contact_card if entity == "contact" else company_card
    count = 0
    for row in rows:
        stream.write(make(row))
        count += 1
    return count
