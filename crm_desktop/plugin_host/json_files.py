"""Reading small JSON files an attacker may have written (policies, signatures).

The size and the nesting depth are bounded before parsing (deeply nested brackets would
make the parser recurse until RecursionError), and every failure is one error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


#: Deeper nesting than any real manifest, policy or file list needs; far below the recursion limit.
MAX_JSON_DEPTH = 64


def nesting_problem(text: str, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``text`` nests arrays/objects deeper than ``max_depth`` (None if it does not)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep"
        elif char in "]}":
            depth -= 1
    return None


def loads_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` after the depth check; raises ``ValueError`` (as ``json.loads`` does) naming the rule."""
    problem = nesting_problem(text, max_depth)
    if problem:
        raise ValueError(problem)
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_bounded_json(path: Path, max_bytes: int, error: type[Exception], *, noun: str,
                      invalid_json: str = "invalid JSON: {exc}") -> Any:
    """Parse ``path`` as UTF-8 JSON of at most ``max_bytes``; raise ``error`` naming the file.

    ``noun`` names the kind of file in messages ("policy", "signature");
    ``invalid_json`` is the message for unparsable text, with ``{exc}`` for the parser's words.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {noun}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: a {noun} file is at most {max_bytes} bytes")
    try:
        return loads_bounded(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path}: " + invalid_json.format(exc=exc)) from None
