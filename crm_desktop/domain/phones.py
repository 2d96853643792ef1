"""Phone numbers as duplicate keys: E.164 with Google's ``phonenumbers`` library.

``phone_key("030 1234567", "DE")`` and ``phone_key("+49 30 1234567")`` are both
``+49301234567``, while ``+43 1 2345678`` (Vienna) and ``+49 1 2345678`` stay
apart: the country decides, not the last digits. A number written without its
country (``030 ...``) is read in the *default region*, the user's setting
``phoneRegion`` (see :func:`crm_desktop.settings.phone_region`); without one, or
when the library cannot read it, the key is the plain digits (prefixed ``#``, so
it can never equal an E.164 key by accident), which still lets identically
written numbers meet.

Speed: an import normalises hundreds of thousands of numbers and the library
takes ~18 µs for each. Numbers already written internationally (``+49 30 ...``,
digits and separators only) take a shortcut that gives the library's answer in
~1 µs: the country code is found in the library's own table, and when the region's
national-prefix rule (the library's metadata) could apply to the rest, the
library itself is asked. ``tests/unit/test_phone_email.py`` checks the shortcut
against the library over many numbers of many countries.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, NumberParseException, PhoneMetadata, PhoneNumberFormat

_INTERNATIONAL = re.compile(r"\+[1-9][0-9 ./-]*[0-9]\Z")
_SEPARATORS = str.maketrans("", "", " ./-")
_MIN_NSN, _MAX_NSN = 2, 17  # the library's TOO_SHORT_NSN / TOO_LONG bounds


def is_region(code: str | None) -> bool:
    """True for a region the library knows (``DE``, ``US``, ...)."""
    return bool(code and code.upper() in phonenumbers.SUPPORTED_REGIONS)


@functools.lru_cache(maxsize=None)
def _prefix_rule(country_code: int) -> "re.Pattern[str] | None | Literal[False]":
    """The national-prefix pattern of a country code's main region; False: no shortcut for it."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions or regions[0] == "001":  # non-geographic codes: ask the library
        return False
    metadata = PhoneMetadata.metadata_for_region(regions[0])
    if metadata is None:
        return False
    rule = metadata.national_prefix_for_parsing
    return re.compile(rule) if rule else None


def _shortcut(text: str) -> str | None:
    """E.164 of ``+CC digits`` without calling the parser, or None when the parser must decide."""
    if not _INTERNATIONAL.match(text):
        return None
    digits = text[1:].translate(_SEPARATORS)
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    rule = _prefix_rule(code)
    if rule is False or (rule is not None and rule.match(national)):
        return None  # a national prefix or carrier code may have to be stripped: the library knows
    return f"+{code}{national}"


@functools.lru_cache(maxsize=65536)
def _parsed(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def phone_key(text: str | None, region: str | None = None) -> str | None:
    """The duplicate key of a phone number: E.164 (``+49301234567``), ``#digits``, or None."""
    if not text:
        return None
    text = text.strip()
    key = _shortcut(text)
    if key is not None:
        return key
    key = _parsed(text, region.upper() if region else None)
    if key is not None:
        return key
    digits = "".join(c for c in text if c.isdigit())
    return f"#{digits}" if len(digits) >= 5 else None


#: a country code, its size in digits and its national-prefix rule (:func:`_prefix_rule`)
_CodeRule = tuple[int | None, int, "re.Pattern[str] | None | Literal[False]"]


def _code_rule(head: str) -> _CodeRule:
    """The country code a number's first three digits begin with, its size and its national-prefix
    rule (:func:`_prefix_rule`); ``(None, 0, False)`` when no code matches. Columns remember it per head."""
    for size in (1, 2, 3):
        number = int(head[:size])
        if number in COUNTRY_CODE_TO_REGION_CODE:
            return number, size, _prefix_rule(number)
    return None, 0, False


#: the common spelling of an international number in an import: ``+`` and digits, ASCII spaces between
_PLAIN_INTERNATIONAL = re.compile(r"\+[1-9][0-9 ]*[0-9]\Z")


def plain_phone_column(values: "list[object]", region: str | None = None,
                       max_len: int = 40) -> "tuple[list[str | None], list[str | None], list[int]]":
    """An import's phone column in one pass: (the stripped numbers, their :func:`phone_key`, the
    positions this fast pass leaves to the caller). It answers for empty values and for the common
    ``+49 30 1234567`` (at most ``max_len`` characters, three digits or more), which every rule of
    ``validation.check_phone`` accepts; any other value is left (None in both lists) for the full
    check and :func:`phone_key`, so the answers are those of that slow path value by value."""
    match = _PLAIN_INTERNATIONAL.match
    rules: dict[str, _CodeRule] = {}  # the first three digits -> (code, its size, the prefix rule)
    texts: list[str | None] = []
    keys: list[str | None] = []
    left: list[int] = []
    for i, value in enumerate(values):
        if not value:
            texts.append(None)
            keys.append(None)
            continue
        if type(value) is str:
            text = value.strip()
            if not text:
                texts.append(None)
                keys.append(None)
                continue
            if len(text) <= max_len and match(text):
                digits = text[1:].replace(" ", "")
                if len(digits) >= 3:
                    texts.append(text)
                    head = digits[:3]
                    known = rules.get(head)
                    if known is None:
                        known = rules[head] = _code_rule(head)
                    code, size, rule = known
                    national = digits[size:]
                    if code is not None and _MIN_NSN <= len(national) <= _MAX_NSN and rule is not False and (
                            rule is None or not rule.match(national)):
                        keys.append(f"+{code}{national}")
                    else:
                        keys.append(phone_key(text, region))
                    continue
        texts.append(None)
        keys.append(None)
        left.append(i)
    return texts, keys, left


def library_phone_key(text: str, region: str | None = None) -> str | None:
    """The library's E.164 answer alone (no shortcut): what the shortcut is tested against."""
    return _parsed.__wrapped__(text.strip(), region)
