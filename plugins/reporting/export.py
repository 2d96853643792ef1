"""A chart's PNG and CSV, as the bytes of the exported file.

The file itself is written by the host (``ctx.ui.save_file``): it asks the user where, and puts
the file in place atomically, so a failed export never leaves half a file in place of an older one.
"""

from __future__ import annotations

import csv
import io

from .charts import png_bytes
from .dashboard import Chart

#: what each export is: (file name filter for the save dialog, file extension)
FORMATS = {"png": ("PNG image (*.png)", ".png"), "csv": ("CSV file (*.csv)", ".csv")}


def csv_text(chart: Chart) -> str:
    """The chart's numbers as CSV (header row first), as exported."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(chart.csv_header)
    writer.writerows(chart.csv_rows)
    return out.getvalue()


def file_bytes(chart: Chart, what: str) -> bytes:
    """The exported file: ``png`` (960×540) or ``csv`` (UTF-8 with a byte order mark, so spreadsheet
    programs read non-ASCII names right)."""
    if what == "png":
        return png_bytes(chart)
    if what == "csv":
        return csv_text(chart).encode("utf-8-sig")
    raise ValueError(f"unknown export format {what!r} (one of {', '.join(FORMATS)})")
