"""Turning what a user types into a safe FTS5 query.

Every word becomes a quoted prefix term (``"mar"*``), so punctuation such as
``-``, ``:`` or ``"`` in the input can never be read as FTS5 syntax.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def fts_match_expression(user_text: str | None, *, prefix: bool = True) -> str | None:
    """An FTS5 MATCH expression that finds rows containing all words; None if no words."""
    if not user_text:
        return None
    words = _WORD.findall(user_text)
    if not words:
        return None
    star = "*" if prefix else ""
    return " ".join(f'"{w}"{star}' for w in words[:12])
