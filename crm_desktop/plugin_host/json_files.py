"""Reading small JSON files an attacker may have written (policies, signatures).

The size is bounded before parsing, and every failure is one error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: " + invalid_json.format(exc=exc)) from None
