"""Charts drawn with QPainter: bars side by side, stacked bars, and KPI tiles.

Why not QtCharts: it lives in the ``PySide6-Addons`` wheel (175 MB download, 439 MB installed
for 6.11.3) that the app does not otherwise need, and would add ``libQt6Charts`` plus its
OpenGL dependencies to the installed app. These charts need bars, a value axis, a legend and
labels: about the size of this module. See ``plugins/reporting/README.md``.

:func:`paint_chart` draws into any rectangle of any painter, so the widget on screen and the
PNG export (:func:`png_bytes`) are the same drawing.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from .dashboard import Chart

#: Tableau 10: distinguishable, also for the common colour-vision deficiencies
PALETTE = ("#4e79a7", "#f28e2b", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
           "#59a14f", "#e15759")
NAMED = {"Won": "#59a14f", "Lost": "#e15759"}
TEXT, MUTED, GRID, BACKGROUND = QColor("#1f2933"), QColor("#616e7c"), QColor("#e4e7eb"), QColor("#ffffff")
PNG_SIZE = QSize(960, 540)


def series_color(index: int, name: str) -> QColor:
    return QColor(NAMED.get(name, PALETTE[index % len(PALETTE)]))


def format_value(value: float, unit: str, short: bool = True) -> str:
    """``1.2M``, ``350k``, ``42``, ``37.5 %``, ``18.2 d`` (short) or the full number."""
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "days":
        return f"{value:.1f} d"
    if short:
        magnitude = abs(value)
        for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if magnitude >= limit:
                text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
                return f"{text}{suffix}"
    if unit == "money":
        return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
    return f"{value:,.0f}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 × 10^k) up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if step < 1 and top >= 1:
        step = 1.0
    ticks, value = [0.0], 0.0
    while value < top - 1e-9:
        value += step
        ticks.append(value)
    return ticks


def _font(base: QFont, points: float, bold: bool = False) -> QFont:
    font = QFont(base)
    font.setPointSizeF(points)
    font.setBold(bold)
    return font


def paint_chart(painter: QPainter, rect: QRectF, chart: Chart, base_font: QFont | None = None) -> None:
    """Draw ``chart`` (title, subtitle, legend, axis, bars or tiles) into ``rect``."""
    base = base_font or painter.font()
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.fillRect(rect, BACKGROUND)
    pad = 12.0
    area = rect.adjusted(pad, pad, -pad, -pad)
    title_font, small = _font(base, 11, True), _font(base, 8.5)
    painter.setFont(title_font)
    painter.setPen(TEXT)
    title_h = QFontMetricsF(title_font).height()
    painter.drawText(QRectF(area.left(), area.top(), area.width(), title_h), Qt.AlignmentFlag.AlignLeft, chart.title)
    painter.setFont(small)
    painter.setPen(MUTED)
    small_h = QFontMetricsF(small).height()
    subtitle = QFontMetricsF(small).elidedText(chart.subtitle, Qt.TextElideMode.ElideRight, area.width())
    painter.drawText(QRectF(area.left(), area.top() + title_h, area.width(), small_h), Qt.AlignmentFlag.AlignLeft,
                     subtitle)
    body = area.adjusted(0, title_h + small_h + 8, 0, 0)
    if chart.is_empty and chart.kind != "kpi":
        painter.setPen(MUTED)
        painter.setFont(_font(base, 10))
        painter.drawText(body, Qt.AlignmentFlag.AlignCenter, "No data for these filters")
    elif chart.kind == "kpi":
        _paint_tiles(painter, body, chart, base)
    else:
        body = _paint_legend(painter, body, chart, small)
        _paint_bars(painter, body, chart, small)
    painter.restore()


def _paint_legend(painter: QPainter, body: QRectF, chart: Chart, font: QFont) -> QRectF:
    if len(chart.series) < 2 and chart.unit != "money":
        return body
    metrics = QFontMetricsF(font)
    x, y, row_h = body.left(), body.top(), metrics.height() + 4
    painter.setFont(font)
    for i, series in enumerate(chart.series):
        width = 14 + metrics.horizontalAdvance(series.name) + 14
        if x + width > body.right() and x > body.left():
            x, y = body.left(), y + row_h
        painter.fillRect(QRectF(x, y + (row_h - 10) / 2, 10, 10), series_color(i, series.name))
        painter.setPen(TEXT)
        painter.drawText(QRectF(x + 14, y, width, row_h), Qt.AlignmentFlag.AlignVCenter, series.name)
        x += width
    return body.adjusted(0, y - body.top() + row_h + 4, 0, 0)


def _paint_bars(painter: QPainter, body: QRectF, chart: Chart, font: QFont) -> None:
    metrics = QFontMetricsF(font)
    n = len(chart.categories)
    stacked = chart.kind == "stacked"
    if stacked:
        top = max((sum(s.values[i] for s in chart.series) for i in range(n)), default=0.0)
    else:
        top = max((v for s in chart.series for v in s.values), default=0.0)
    ticks = nice_ticks(top)
    labels = [format_value(t, chart.unit) for t in ticks]
    axis_w = max(metrics.horizontalAdvance(t) for t in labels) + 8
    label_h = metrics.height() + 4
    plot = QRectF(body.left() + axis_w, body.top() + metrics.height() / 2, body.width() - axis_w,
                  body.height() - label_h - metrics.height() / 2)
    if plot.height() < 20 or plot.width() < 20:
        return
    scale = plot.height() / ticks[-1]
    painter.setFont(font)
    for tick, text in zip(ticks, labels):
        y = plot.bottom() - tick * scale
        painter.setPen(QPen(GRID, 1))
        painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        painter.setPen(MUTED)
        painter.drawText(QRectF(body.left(), y - metrics.height() / 2, axis_w - 6, metrics.height()),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
    slot = plot.width() / max(n, 1)
    group = slot * 0.72
    lanes = 1 if stacked else len(chart.series)
    bar_w = group / max(lanes, 1)
    show_values = not stacked and n * lanes <= 16 and bar_w >= metrics.horizontalAdvance("888k")
    for i in range(n):
        x0 = plot.left() + i * slot + (slot - group) / 2
        base = 0.0
        for j, series in enumerate(chart.series):
            value = series.values[i]
            if value <= 0:
                continue
            height = value * scale
            x = x0 if stacked else x0 + j * bar_w
            bottom = plot.bottom() - base * scale
            bar = QRectF(x, bottom - height, max(bar_w - (0 if stacked else 2), 1), height)
            painter.fillRect(bar, series_color(j, series.name))
            if stacked:
                base += value
            elif show_values:
                painter.setPen(TEXT)
                painter.drawText(QRectF(bar.left() - 10, bar.top() - metrics.height() - 1, bar.width() + 20,
                                        metrics.height()), Qt.AlignmentFlag.AlignCenter, format_value(value, chart.unit))
    painter.setPen(QPen(MUTED, 1))
    painter.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
    # category labels: as many as fit side by side, evenly thinned
    widest = max((metrics.horizontalAdvance(c) for c in chart.categories), default=0) + 8
    every = max(1, math.ceil(widest / slot)) if slot < widest else 1
    max_w = slot * every
    painter.setPen(MUTED)
    for i in range(0, n, every):
        text = metrics.elidedText(chart.categories[i], Qt.TextElideMode.ElideRight, max_w - 4)
        cx = plot.left() + (i + 0.5) * slot
        painter.drawText(QRectF(cx - max_w / 2, plot.bottom() + 3, max_w, label_h), Qt.AlignmentFlag.AlignHCenter,
                         text)


def _paint_tiles(painter: QPainter, body: QRectF, chart: Chart, base: QFont) -> None:
    units = [row[2] for row in chart.csv_rows] if chart.csv_header[-1:] == ("unit",) else [chart.unit] * len(
        chart.categories)
    n = len(chart.categories)
    columns = 2 if body.width() < 140 * n else n
    rows = math.ceil(n / columns)
    gap = 10.0
    tile_w = (body.width() - gap * (columns - 1)) / columns
    tile_h = min((body.height() - gap * (rows - 1)) / rows, 120.0)
    top = body.top() + max(0.0, (body.height() - rows * tile_h - gap * (rows - 1)) / 2)
    value_font, label_font = _font(base, 20, True), _font(base, 9)
    for i, (name, value, unit) in enumerate(zip(chart.categories, chart.series[0].values, units)):
        r, c = divmod(i, columns)
        tile = QRectF(body.left() + c * (tile_w + gap), top + r * (tile_h + gap), tile_w, tile_h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#f5f7fa"))
        painter.drawRoundedRect(tile, 6, 6)
        painter.fillRect(QRectF(tile.left(), tile.top() + 8, 4, tile.height() - 16), series_color(i, name))
        painter.setPen(TEXT)
        painter.setFont(value_font)
        painter.drawText(tile.adjusted(12, 0, -8, -tile.height() * 0.35), Qt.AlignmentFlag.AlignLeft |
                         Qt.AlignmentFlag.AlignBottom, format_value(value, unit, short=unit != "count"))
        painter.setPen(MUTED)
        painter.setFont(label_font)
        painter.drawText(tile.adjusted(12, tile.height() * 0.68, -8, 0), Qt.AlignmentFlag.AlignLeft |
                         Qt.AlignmentFlag.AlignTop, name)


def render_image(chart: Chart, size: QSize = PNG_SIZE, font: QFont | None = None) -> QImage:
    """The chart drawn on a white image of ``size`` pixels."""
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(BACKGROUND)
    painter = QPainter(image)
    try:
        paint_chart(painter, QRectF(0, 0, size.width(), size.height()), chart, font)
    finally:
        painter.end()
    return image


def png_bytes(chart: Chart, size: QSize = PNG_SIZE, font: QFont | None = None) -> bytes:
    """The chart as a PNG file's bytes."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not render_image(chart, size, font).save(buffer, "PNG"):
        raise OSError(f"could not encode the chart {chart.title!r} as PNG")
    buffer.close()
    return bytes(data.data())


class ChartView(QWidget):
    """A widget showing one :class:`Chart`."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.chart: Chart | None = None
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_chart(self, chart: Chart | None) -> None:
        self.chart = chart
        self.setToolTip("" if chart is None else f"{chart.title}: {chart.subtitle}")
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        try:
            if self.chart is None:
                painter.fillRect(self.rect(), BACKGROUND)
                painter.setPen(MUTED)
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Loading…")
            else:
                paint_chart(painter, QRectF(self.rect()), self.chart, self.font())
        finally:
            painter.end()
