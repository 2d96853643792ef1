"""Turning what a user types into safe FTS5 queries.

Every word becomes a quoted term (``"mar"*``), so punctuation such as ``-``,
``:`` or ``"`` in the input can never be read as FTS5 syntax.

Words of two letters or more match as prefixes (the index keeps 2- and
3-letter prefixes, ``storage/fts.py``). A one-letter word matches only that
whole word (an initial such as the "J" in "J Smith"): a one-letter prefix
would have to merge a large part of the vocabulary and could not be answered
while the user types.

:func:`ranking_tiers` gives the ordered, increasingly loose expressions the
search ranks by; see ``docs/search.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 12
MIN_PREFIX = 2


def search_words(user_text: str | None) -> list[str]:
    """The words of ``user_text`` that search uses (letters and digits, at most 12)."""
    if not user_text:
        return []
    return _WORD.findall(user_text)[:MAX_WORDS]


def _term(word: str, prefix: bool) -> str:
    star = "*" if prefix and len(word) >= MIN_PREFIX else ""
    return f'"{word}"{star}'


def fts_match_expression(user_text: str | None, *, prefix: bool = True) -> str | None:
    """An FTS5 MATCH expression that finds rows containing all words; None if no words."""
    words = search_words(user_text)
    if not words:
        return None
    return " ".join(_term(w, prefix) for w in words)


@dataclass(frozen=True)
class Tier:
    """One level of match quality: ``expression`` for FTS5 MATCH, ``label`` for docs and logs."""

    level: int
    label: str
    expression: str


def ranking_tiers(user_text: str | None, name_columns: tuple[str, ...]) -> list[Tier]:
    """The match tiers for ``user_text``, best first; empty if there are no words.

    0. the name starts with the first word as a whole word and contains the others
    1. the name starts with the first word (as a prefix) and contains the others
    2. the name contains every word (as prefixes), anywhere
    3. the record contains every word in any column (e-mail, phone, company, notes, ...)

    A record belongs to the first tier it matches; the search ranks tier by tier.
    """
    words = search_words(user_text)
    if not words:
        return []
    cols = "{" + " ".join(name_columns) + "}"
    first, rest = words[0], words[1:]
    rest_terms = " ".join(_term(w, True) for w in rest)
    tail = f" {rest_terms}" if rest_terms else ""
    tiers = [
        Tier(0, "name starts with the word", f"{cols} : (^ {_term(first, False)}{tail})"),
        Tier(1, "name starts with the prefix", f"{cols} : (^ {_term(first, True)}{tail})"),
        Tier(2, "name contains the words", f"{cols} : ({_term(first, True)}{tail})"),
        Tier(3, "any field contains the words", fts_match_expression(user_text) or ""),
    ]
    # Tiers 0 and 1 are the same query for a one-letter first word (never a prefix).
    if len(first) < MIN_PREFIX:
        tiers.pop(1)
    return tiers
