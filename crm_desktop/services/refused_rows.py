"""The refused rows of an import, written beside the imported file.

With "import the valid rows" (``import --skip-invalid``), every row that breaks a
rule is left out and written, with its line and the reason, to
``<name>.refused.csv`` next to the file, in the file's own columns so it can be
corrected and imported again. The file is written to a temporary name, flushed
to disk, then linked into place: it appears whole or not at all, and an existing
file is never replaced (``people.refused-2.csv`` and so on are taken instead).
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from crm_desktop.services.csv_format import defuse_cell

REASON_HEADER = "Refused Because"
LINE_HEADER = "Line"


@dataclass(frozen=True)
class RefusedRow:
    """One refused row: its line in the file, why, and its cells (in the file's columns)."""

    line: int
    reason: str
    cells: Sequence[str]


def refused_path_for(source: Path, attempt: int = 1) -> Path:
    suffix = "" if attempt == 1 else f"-{attempt}"
    return source.with_name(f"{source.stem}.refused{suffix}.csv")


def write_refused(source: Path, headers: Sequence[str], rows: Sequence[RefusedRow]) -> Path:
    """Write ``rows`` beside ``source`` atomically under a name no file has yet; returns it."""
    source = Path(source)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{source.stem}.", suffix=".refused.tmp", dir=source.parent)
    tmp = Path(tmp_name)
    try:
        # utf-8-sig and ',' like the app's exports, so spreadsheets open it and it imports back
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as stream:
            writer = csv.writer(stream, lineterminator="\r\n")
            writer.writerow([*headers, LINE_HEADER, REASON_HEADER])
            for row in rows:
                cells = list(row.cells[:len(headers)]) + [""] * (len(headers) - len(row.cells))
                # defused like an export (csv_format.defuse_cell), so a fixed file imports back the same
                writer.writerow([*map(defuse_cell, cells), row.line, defuse_cell(row.reason)])
            stream.flush()
            os.fsync(stream.fileno())
        for attempt in range(1, 1000):
            target = refused_path_for(source, attempt)
            try:
                os.link(tmp, target)  # fails if the name exists: never overwrites
            except FileExistsError:
                continue
            except OSError:  # file systems without hard links (FAT, some network shares)
                if target.exists():
                    continue
                os.replace(tmp, target)
            return target
        raise FileExistsError(f"{refused_path_for(source)} and 998 numbered variants exist already")
    finally:
        tmp.unlink(missing_ok=True)
