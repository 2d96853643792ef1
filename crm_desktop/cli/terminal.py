"""Text from the database or from a file, made safe to print on a terminal.

A record's name may hold an escape sequence (``ESC ] 0 ; title BEL`` retitles the window,
``ESC [ 2 J`` clears it) or a bidirectional override that makes the line read differently from
what it says. Input cleaning removes control characters (crm_desktop.domain.validation), but
old data, a plugin's own tables or an error message quoting a file can still carry them; so
everything the command line prints from data goes through :func:`for_terminal`, which writes
each such character as a visible escape (``\\x1b``, ``\\u202e``) instead.
"""

from __future__ import annotations

import re

#: C0 controls, DEL, C1 controls, and the bidirectional embedding, override and isolate marks
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

#: what json.dumps leaves raw (it escapes C0 inside strings; C0 outside them is its own layout)
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """``text`` with every control character and bidi override written as a visible escape."""
    text = "" if text is None else str(text)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def json_for_terminal(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the characters above written as
    ``\\uXXXX`` escapes: still the same JSON, and safe to print (C0 is escaped by json already)."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
