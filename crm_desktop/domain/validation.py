"""Validation rules shared by services, import and the UI's inline messages.

Each check raises :class:`~crm_desktop.errors.ValidationError` naming the
field, the bad value and the rule.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TypeVar, cast

import email_validator

from crm_desktop.domain.phones import phone_key, plain_phone_column
from crm_desktop.errors import ValidationError

# An ASCII dot-atom local part (RFC 5322): the common case, checked here so that the library
# is asked once per domain rather than once per address (see _email_domain).
_ASCII_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
# white space as \s, but without the control characters (TAB, LF, ...), which clean_text refuses by name
_SPACE = "\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PHONE_ALLOWED = re.compile(f"^[0-9+()./{_SPACE}-]{{3,40}}(?:[{_SPACE}]*(?:x|ext\\.?)[{_SPACE}]*\\d{{1,6}})?$",
                            re.IGNORECASE)
_NOT_DIGITS = re.compile(r"\D+")
_URL = re.compile(r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?$")


# -- control characters ----------------------------------------------------------
#
# Text reaches the database from the UI, the services, imports, sync pulls and plugins; all of it
# passes clean_text (or clean_texts, or strip_controls for pulled records). The rule, per kind of
# field (docs/reliability.md, "Control characters"):
#
# * free text on one line (names, titles, addresses, ...): control characters (C0, DEL, C1) are
#   removed; a run of tabs and line breaks becomes one space. Nothing a user typed is refused.
# * multi-line text (MULTILINE_FIELDS: notes, body): the same, but line breaks are kept (CR LF and
#   CR become LF) and so are tabs.
# * identifiers and structured values (``id``, ``*_id`` references, e-mail, phone, web address):
#   refused with "must not contain control characters": a control character there means the value
#   is not what it claims to be, and removing it would silently change what it points to.

#: fields whose text keeps its line breaks and tabs
MULTILINE_FIELDS = frozenset({"notes", "body", "description"})
#: C0 controls, DEL and C1 controls (ESC, CSI 0x9b, NUL, BEL, ...)
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
#: the controls removed from multi-line text (all but TAB, LF, CR)
_CONTROLS_MULTILINE = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")
#: the controls that stand for white space on one line
_LINE_SPACE = re.compile("[\t\n\r\x0b\x0c\x1c-\x1f\x85]+")


def is_strict_field(field: str) -> bool:
    """Identifiers and references: refused, never cleaned, when they hold a control character."""
    return field == "id" or field.endswith("_id")


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a control character (C0, DEL or C1)."""
    return _CONTROLS.search(text) is not None


def strip_controls(text: str, field: str) -> str:
    """``text`` without control characters, by the rule of ``field``'s kind (never refuses)."""
    if not _CONTROLS.search(text):
        return text
    if field in MULTILINE_FIELDS:
        return _CONTROLS_MULTILINE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROLS.sub("", _LINE_SPACE.sub(" ", text))


def clean_text(value: object, field: str, *, entity: str | None = None, max_len: int = 500,
               required: bool = False, strict: bool = False) -> str | None:
    """Strip a text value; empty becomes None; enforce presence and length.

    Control characters are removed by the rule of the field's kind (see above); with ``strict``
    (e-mail, phone, web address) or for an id field they are refused instead.
    """
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValidationError(field, value, "must be text", entity)
    if _CONTROLS.search(text):
        if strict or is_strict_field(field):
            raise ValidationError(field, text[:40], "must not contain control characters", entity)
        text = strip_controls(text, field).strip()
    if not text:
        if required:
            raise ValidationError(field, value, "is required", entity)
        return None
    if len(text) > max_len:
        raise ValidationError(field, text[:40] + "…", f"must be at most {max_len} characters", entity)
    return text


def check_email(value: object, field: str = "email", entity: str | None = None) -> str | None:
    """An e-mail address checked by ``email-validator`` (syntax only, no network), normalised.

    Internationalised addresses (RFC 6531, ``łukasz@example.com``) and domains (IDN,
    ``info@bücher.de``) pass; the domain comes back in its normalised form (lower case,
    Unicode). Special-use domains such as ``.test`` or ``localhost`` are refused.
    """
    text = clean_text(value, field, entity=entity, max_len=254, strict=True)
    if text is None:
        return None
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and _ASCII_LOCAL.match(local):
        normalised = _email_domain(domain)
        if isinstance(normalised, tuple) and len(text) <= 200:
            return f"{local}@{normalised[0]}"
    try:
        return email_validator.validate_email(text, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(field, text, f"must be an e-mail address like name@example.com ({exc})",
                              entity) from None


@functools.lru_cache(maxsize=8192)
def _email_domain(domain: str) -> tuple[str] | None:
    """(normalised domain,) when email-validator accepts it, else None (the full check says why)."""
    try:
        result = email_validator.validate_email(f"postmaster@{domain}", check_deliverability=False)
    except email_validator.EmailNotValidError:
        return None
    return (result.domain,)


def check_emails(values: "list[object]", field: str = "email",
                 entity: str | None = None) -> "tuple[list[str | None], list[int]]":
    """:func:`check_email` over a column: (the normalised values, the positions it refuses).

    The same rules and results, without a call per value: the common ASCII address is
    checked inline against the cached domain answer; every other value goes through
    :func:`check_email` itself. A refused position is None in the values; ask
    :func:`check_email` for its message.
    """
    out: list[str | None] = []
    bad: list[int] = []
    match, domain_of = _ASCII_LOCAL.match, _email_domain
    for i, value in enumerate(values):
        if not value:
            out.append(None)
            continue
        if type(value) is str:
            text = value.strip()
            local, at, domain = text.rpartition("@")
            if at and len(local) <= 64 and len(text) <= 200 and match(local):
                normalised = domain_of(domain)
                if normalised is not None:
                    out.append(f"{local}@{normalised[0]}")
                    continue
        try:
            out.append(check_email(value, field, entity))
        except ValidationError:
            out.append(None)
            bad.append(i)
    return out, bad


def check_phone_column(values: "list[object]", field: str = "phone", entity: str | None = None,
                       region: str | None = None) -> "tuple[list[str | None], list[str | None], list[int]]":
    """:func:`check_phone` and ``phones.phone_key`` over a column (an import's) in one pass: (the
    cleaned values, their duplicate keys, the positions it refuses; a refused value is None in both). The common ``+49 30 1234567`` is answered by
    ``phones.plain_phone_column``; every other value goes through :func:`check_phone` and
    ``phone_key`` themselves, so the results are theirs value by value."""
    out, keys, left = plain_phone_column(values, region)
    bad: list[int] = []
    for i in left:
        try:
            text = check_phone(values[i], field, entity)
        except ValidationError:
            bad.append(i)
            continue
        out[i] = text
        keys[i] = phone_key(text, region) if text else None
    return out, keys, bad


def clean_texts(values: "list[object]", limit: int, field: str = "") -> "tuple[list[object], list[int]]":
    """:func:`clean_text` (not required) over a column: (the stripped values or None, the
    positions it would refuse: not text, or longer than ``limit``, or a control character in
    an id field; those keep their value). Control characters are removed as :func:`clean_text`
    removes them."""
    stripped: list[str] | None
    try:  # the common column (an import's): all text, no control character, none too long
        # the cast assumes the common case; str.strip raises TypeError on anything else
        stripped = list(map(str.strip, cast("list[str]", values)))
    except TypeError:  # a value that is not text (None, a number): value by value below
        stripped = None
    if stripped is not None and (not stripped or (max(map(len, stripped)) <= limit
                                                  and _CONTROLS.search("".join(stripped)) is None)):
        # an empty value is None; a column without one (names, e-mails) is returned as it is
        cleaned: list[object] = list(stripped) if "" not in stripped else [text or None for text in stripped]
        return cleaned, []
    out = [(value.strip() or None) if type(value) is str else (None if value is None else value)
           for value in values]
    search = _CONTROLS.search
    for i, text in enumerate(out):
        if type(text) is str and search(text) and not is_strict_field(field):
            out[i] = strip_controls(text, field).strip() or None
    bad = [i for i, text in enumerate(out) if text is not None and (
        type(text) is not str or len(text) > limit or (is_strict_field(field) and search(text)))]
    return out, bad


def check_phone(value: object, field: str = "phone", entity: str | None = None) -> str | None:
    text = clean_text(value, field, entity=entity, max_len=40, strict=True)
    if text is None:
        return None
    if not _PHONE_ALLOWED.match(text) or len(_NOT_DIGITS.sub("", text)) < 3:
        raise ValidationError(field, text, "must be a phone number of digits, spaces, + ( ) . / -", entity)
    return text


def check_url(value: object, field: str = "website", entity: str | None = None) -> str | None:
    text = clean_text(value, field, entity=entity, max_len=300, strict=True)
    if text is None:
        return None
    if not _URL.match(text):
        raise ValidationError(field, text, "must be a web address like example.com", entity)
    return text


def check_amount_cents(value: object, field: str = "amount", entity: str | None = None) -> int:
    """Parse an amount (number or text, '.' or ',' decimals) to integer cents, >= 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValidationError(field, value, "must be a number", entity)
    try:
        if isinstance(value, str):
            text = value.strip().replace(" ", "").replace("\u00a0", "")
            if "," in text and "." in text:
                # the later separator is the decimal one: 12.500,50 or 12,500.50
                decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
                thousands = "." if decimal_sep == "," else ","
                text = text.replace(thousands, "").replace(decimal_sep, ".")
            elif "," in text:
                text = text.replace(",", ".")
            amount = Decimal(text)
        else:
            amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(field, value, "must be a number", entity) from None
    if not amount.is_finite():
        raise ValidationError(field, value, "must be a number", entity)
    if amount < 0:
        raise ValidationError(field, value, "must be 0 or more", entity)
    cents = (amount * 100).quantize(Decimal(1))
    if cents > 10**15:
        raise ValidationError(field, value, "is too large", entity)
    return int(cents)


_Choice = TypeVar("_Choice", bound=Enum)


def check_choice(value: object, choices: type[_Choice], field: str, entity: str | None = None,
                 default: _Choice | None = None) -> _Choice:
    if value is None or value == "":
        if default is None:
            raise ValidationError(field, value, "is required", entity)
        return default
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise ValidationError(field, value, f"must be one of {allowed}", entity) from None


def check_datetime(value: object, field: str, entity: str | None = None) -> datetime | None:
    """Accept datetime, date or ISO text; return an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(field, value, "must be a date/time like 2026-05-01T14:30", entity) from None
    else:
        raise ValidationError(field, value, "must be a date/time", entity)
    if result.tzinfo is None:
        result = result.astimezone()  # naive means local time
    return result.astimezone(timezone.utc)


def check_date(value: object, field: str, entity: str | None = None) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(field, value, "must be a date like 2026-05-01", entity) from None
    raise ValidationError(field, value, "must be a date", entity)


# -- normalisation for duplicate detection -----------------------------------

def normalize_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def normalize_phone(phone: str | None, region: str | None = None) -> str | None:
    """The duplicate key of a phone number: E.164 via ``phonenumbers`` (numbers without a
    country read in ``region``, the user's default); see :mod:`crm_desktop.domain.phones`."""
    return phone_key(phone, region)


@functools.lru_cache(maxsize=65536)
def normalize_name(*parts: str | None) -> str | None:
    """Case-, accent- and spacing-insensitive name key."""
    text = " ".join(p for p in parts if p)
    if not text.strip():
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())
