"""The dashboard panel: filters on top, a card per chart with PNG and CSV export.

Loading runs off the GUI thread (``ctx.ui.run_in_background``); only plain data
(:class:`~.dashboard.Dashboard`) comes back to the GUI thread. A newer request makes an older
answer stale: it is dropped. Exports are saved by the host (``ctx.ui.save_file``): it asks the
user where and writes the file atomically.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QDate, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox, QDateEdit, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy,
    QVBoxLayout, QWidget,
)

from . import dashboard, host_api
from .charts import ChartView
from .export import FORMATS, file_bytes

log = logging.getLogger("crm.plugins.reporting")

#: events coalesced into one refresh within this many milliseconds
REFRESH_DELAY_MS = 300
ALL = ""


def default_range(today: date) -> tuple[date, date]:
    """The last twelve months: the first day of the month eleven months back, to today."""
    start = dashboard.add_months(today.replace(day=1), -11)
    return start, today


class _Relay(QObject):
    """Carries a refresh request from any thread to the GUI thread (queued signal)."""

    refresh_requested = Signal()


class ChartCard(QFrame):
    """One chart with its export buttons."""

    def __init__(self, key: str, title: str, panel: "DashboardPanel"):
        super().__init__(panel)
        self.key = key
        self.setObjectName(f"reporting-card-{key}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame#%s { background: white; border: 1px solid #d9dee4; border-radius: 6px; }"
                           % self.objectName())
        self.view = ChartView(self)
        self.png_button = QPushButton("Save PNG…", self)
        self.csv_button = QPushButton("Save CSV…", self)
        for button, what in ((self.png_button, "png"), (self.csv_button, "csv")):
            button.setEnabled(False)
            button.setToolTip(f"Save the chart “{title}” as {what.upper()}")
            button.setFlat(True)
            button.clicked.connect(lambda _=False, w=what: panel.ask_export(self.key, w))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.png_button)
        buttons.addWidget(self.csv_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 4)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)

    def show_chart(self, chart: dashboard.Chart) -> None:
        self.view.set_chart(chart)
        self.png_button.setEnabled(True)
        self.csv_button.setEnabled(True)


class DashboardPanel(QWidget):
    """The reporting dashboard. ``dashboard`` holds the last loaded numbers (None until the first)."""

    loaded = Signal()

    def __init__(self, ctx: Any, parent: QWidget | None = None, *, today: Callable[[], date] = date.today):
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("reporting-dashboard")
        self._today = today
        self.dashboard: dashboard.Dashboard | None = None
        self.error: str | None = None
        self._generation = 0
        self._relay = _Relay(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self._relay.refresh_requested.connect(self._timer.start)
        self._build()
        self.refresh()

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        start, end = default_range(self._today())
        self.start_edit = self._date_edit(start)
        self.end_edit = self._date_edit(end)
        self.owner_combo = QComboBox(self)
        self.owner_combo.addItem("All owners", ALL)
        self.team_combo = QComboBox(self)
        self.team_combo.addItem("All teams", ALL)
        self.team_combo.setToolTip(dashboard.TEAM_NAMES_UNKNOWN)
        for combo in (self.owner_combo, self.team_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.currentIndexChanged.connect(lambda _=0: self.refresh())
        self.start_edit.dateChanged.connect(lambda _=None: self.refresh())
        self.end_edit.dateChanged.connect(lambda _=None: self.refresh())
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        self.status = QLabel("", self)
        self.status.setObjectName("reporting-status")
        self.status.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar = QHBoxLayout()
        for label, widget in (("From", self.start_edit), ("to", self.end_edit), ("Owner", self.owner_combo),
                              ("Team", self.team_combo)):
            bar.addWidget(QLabel(label, self))
            bar.addWidget(widget)
            bar.addSpacing(6)
        bar.addWidget(self.refresh_button)
        bar.addSpacing(12)
        bar.addWidget(self.status, 1)
        grid_host = QWidget(self)
        grid_host.setObjectName("reporting-grid")
        grid_host.setStyleSheet("QWidget#reporting-grid { background: #f0f2f5; }")
        grid = QGridLayout(grid_host)
        grid.setSpacing(10)
        self.cards: dict[str, ChartCard] = {}
        titles = {"pipeline": "Pipeline value by stage", "won_lost": "Won and lost deals per month",
                  "win_rate": "Win rate and sales cycle", "activities": "Activities per rep per week",
                  "forecast": "Forecast", "leads": "Leads by source"}
        for i, key in enumerate(dashboard.CHARTS):
            card = ChartCard(key, titles[key], self)
            card.setMinimumHeight(300)
            self.cards[key] = card
            grid.addWidget(card, i // 2, i % 2)
        for column in range(2):
            grid.setColumnStretch(column, 1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(grid_host)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(scroll, 1)

    def _date_edit(self, value: date) -> QDateEdit:
        edit = QDateEdit(QDate(value.year, value.month, value.day), self)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        return edit

    # -- filters and loading ------------------------------------------------------------------

    def filters(self) -> dashboard.Filters:
        """The filters as the controls show them; ValueError if the range is backwards."""
        start, end = self.start_edit.date().toPython(), self.end_edit.date().toPython()
        return dashboard.Filters(start, end, owner_id=self.owner_combo.currentData() or None,
                                 team_id=self.team_combo.currentData() or None)

    def request_refresh(self) -> None:
        """Ask for a refresh from any thread; several requests close together load once."""
        try:
            self._relay.refresh_requested.emit()
        except RuntimeError:  # the panel is gone
            pass

    def refresh(self) -> None:
        """Load every chart for the current filters in the background."""
        try:
            filters = self.filters()
        except ValueError as exc:
            self._show_status(str(exc), error=True)
            return
        self._generation += 1
        generation, ctx, today = self._generation, self.ctx, self._today()
        self._show_status("Loading…")

        def work() -> dashboard.Dashboard:
            return dashboard.load(ctx, filters, today)

        def failed(exc: BaseException) -> None:
            log.error("loading the dashboard failed: %s: %s", type(exc).__name__, exc)
            self._on_failed(generation, f"{type(exc).__name__}: {exc}")

        host_api.run_in_background(ctx, work, lambda result: self._on_done(generation, result), failed)

    def _on_done(self, generation: int, result: dashboard.Dashboard) -> None:
        if generation != self._generation:
            return  # a newer request is on its way
        self.dashboard = result
        self.error = None
        self._fill_people(result)
        for chart in result.charts:
            self.cards[chart.key].show_chart(chart)
        total_ms = sum(c.seconds for c in result.charts) * 1000
        self._show_status(f"Updated {datetime.now():%H:%M:%S} · {len(result.charts)} charts in {total_ms:.0f} ms")
        self.loaded.emit()

    def _on_failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self.error = message
        self._show_status(f"Could not load the dashboard: {message}", error=True)
        self.loaded.emit()

    def _fill_people(self, result: dashboard.Dashboard) -> None:
        """Fill the owner and team lists once the users are known, keeping the current choice."""
        wanted = sorted(result.owners.items(), key=lambda item: item[1].casefold())
        self._refill(self.owner_combo, "All owners", [(uid, name) for uid, name in wanted])
        self._refill(self.team_combo, "All teams", list(result.teams),
                     tip=lambda team: f"Team id {team}. {dashboard.TEAM_NAMES_UNKNOWN}")

    @staticmethod
    def _refill(combo: QComboBox, everyone: str, items: list[tuple[str, str]],
                tip: Callable[[str], str] | None = None) -> None:
        current = [(combo.itemData(i), combo.itemText(i)) for i in range(1, combo.count())]
        if current == items:
            return
        chosen = combo.currentData()
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem(everyone, ALL)
            for key, label in items:
                combo.addItem(label, key)
                if tip is not None:
                    combo.setItemData(combo.count() - 1, tip(key), Qt.ItemDataRole.ToolTipRole)
            index = combo.findData(chosen)
            combo.setCurrentIndex(max(index, 0))
        finally:
            combo.blockSignals(False)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #b42318;" if error else "color: #616e7c;")

    # -- export -------------------------------------------------------------------------------

    def ask_export(self, key: str, what: str) -> Path | None:
        """Ask where to save chart ``key`` as ``png`` or ``csv`` and save it (the host writes the file);
        returns the file written, or None (cancelled, or the host reported the failure)."""
        if self.dashboard is None:
            self._show_status("Nothing to export yet: the dashboard is still loading", error=True)
            return None
        chart = self.dashboard.chart(key)
        name_filter, extension = FORMATS[what]
        data = file_bytes(chart, what)
        suggested = f"{key}-{self.dashboard.filters.start:%Y%m%d}-{self.dashboard.filters.end:%Y%m%d}{extension}"
        written = host_api.save_file(self.ctx, f"Save “{chart.title}”", suggested, [name_filter],
                                     lambda file: file.write(data))
        if written is not None:
            self._show_status(f"Saved {chart.title} to {written}")
        return written

    # -- lifetime -----------------------------------------------------------------------------

    def dispose(self) -> None:
        """Stop taking answers (the plugin is going away; the host drops its background callbacks too)."""
        self._generation += 1  # an answer still on its way is dropped
        self._timer.stop()
