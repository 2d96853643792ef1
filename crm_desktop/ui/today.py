"""Today: overdue and today's tasks and visits, upcoming meetings, deals gone quiet.

An empty database shows :class:`WelcomeView` instead, offering demo data or a CSV import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QStackedWidget,
    QVBoxLayout, QWidget,
)

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.services.paging import ListQuery
from crm_desktop.ui.entities import money, when
from crm_desktop.ui.executor import InlineExecutor
from crm_desktop.ui.resources import icon
from crm_desktop.ui.theme import named

log = logging.getLogger(__name__)

_KIND_ICON = {ActivityKind.CALL: "phone", ActivityKind.VISIT: "visit", ActivityKind.MEETING: "meeting",
              ActivityKind.TASK: "task", ActivityKind.NOTE: "note"}


class _Tile(QFrame):
    def __init__(self, label: str):
        super().__init__()
        self.setObjectName("Tile")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        self.value = named(QLabel("0"), "TileValue")
        layout.addWidget(self.value)
        layout.addWidget(named(QLabel(label), "TileLabel"))


class _Section(QFrame):
    """A titled card holding a list; double-clicking an item opens its record."""

    def __init__(self, title: str, empty_text: str):
        super().__init__()
        self.setObjectName("Card")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        self.title = named(QLabel(title.upper()), "SectionTitle")
        layout.addWidget(self.title)
        self.list = QListWidget()
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setStyleSheet("QListWidget { border: none; } QListWidget::item { padding: 5px 2px; }")
        layout.addWidget(self.list, 1)
        self.more = named(QLabel(), "Muted")
        self.more.hide()
        layout.addWidget(self.more)
        self.empty = named(QLabel(empty_text), "Muted")
        layout.addWidget(self.empty)
        self._title = title

    def set_items(self, rows: list[tuple[str, str, str, str]], total: int | None = None) -> None:
        """rows of (icon name, text, entity, id); ``total`` is the true count when the rows are capped."""
        total = len(rows) if total is None else max(total, len(rows))
        self.list.clear()
        for icon_name, text, entity, record_id in rows:
            item = QListWidgetItem(icon(icon_name), text)
            item.setData(Qt.ItemDataRole.UserRole, (entity, record_id))
            self.list.addItem(item)
        self.title.setText(f"{self._title.upper()}  ·  {total}")
        hidden = total - len(rows)
        self.more.setText(f"and {hidden:,} more".replace(",", "\u2009"))
        self.more.setVisible(hidden > 0)
        self.empty.setVisible(not rows)
        self.list.setVisible(bool(rows))


@dataclass(frozen=True)
class TodayData:
    """Everything the Today page shows, read on the executor's reader thread (plain data only)."""

    empty: bool
    overdue: list = field(default_factory=list)
    today: list = field(default_factory=list)
    upcoming: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # true counts: overdue, today, upcoming, meetings, stale
    pipeline_cents: int = 0


def read_today(services, now: datetime) -> TodayData:
    """The Today page's queries (run off the UI thread): capped lists plus true counts."""
    s = services
    # one row each, not count(): counting a million contacts would be slow
    if not any(service.list(limit=1).items for service in (s.contacts, s.companies, s.deals, s.leads)):
        return TodayData(empty=True)
    agenda = s.activities.agenda(now)
    counts = dict(s.activities.agenda_counts(now))
    meeting_kinds = (ActivityKind.MEETING, ActivityKind.VISIT, ActivityKind.CALL)
    meetings = [a for a in agenda["upcoming"] if a.kind in meeting_kinds]
    # the upcoming list is capped before the kind filter: only a full list needs the true count
    counts["meetings"] = len(meetings)
    if len(agenda["upcoming"]) < counts["upcoming"]:
        counts["meetings"] = s.activities.agenda_counts(now, kinds=meeting_kinds)["upcoming"]
    stale_ids = s.activities.stale_deal_ids(now)
    stale = s.deals.get_many(stale_ids)
    counts["stale"] = s.activities.count_stale_deals(now) if len(stale_ids) >= 100 else len(stale)
    pipeline_cents = 0
    try:
        default = s.pipelines.default()
        pipeline_cents = sum(cents for _, cents in s.deals.stage_totals(default.id, ListQuery(status="open")).values())
    except Exception:  # no pipeline yet: the tile shows 0
        log.debug("no default pipeline for the Today tiles", exc_info=True)
    return TodayData(False, agenda["overdue"], agenda["today"], meetings, stale, counts, pipeline_cents)


class WelcomeView(QWidget):
    """First start: no records yet. Offers demo data or an import."""

    demo_requested = Signal()
    import_requested = Signal()

    def __init__(self, demo_available: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Page")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        card = named(QFrame(), "Welcome")
        card.setMaximumWidth(560)
        layout = QVBoxLayout(card)
        layout.setContentsMargins(36, 32, 36, 32)
        layout.setSpacing(12)
        layout.addWidget(named(QLabel("Welcome to crm-desktop"), "WelcomeTitle"))
        text = named(QLabel("Your database is empty. Everything you add stays on this computer and syncs "
                            "when you are online. Start with some sample records to look around, or bring in "
                            "your contacts from a CSV or vCard file.", wordWrap=True), "Muted")
        layout.addWidget(text)
        buttons = QHBoxLayout()
        self.demo_button = QPushButton("Load demo data")
        self.demo_button.setProperty("primary", True)
        self.demo_button.setEnabled(demo_available)
        if not demo_available:
            self.demo_button.setToolTip("Demo data is not available in this build yet")
        self.import_button = QPushButton(icon("import"), "Import contacts…")
        self.demo_button.clicked.connect(self.demo_requested)
        self.import_button.clicked.connect(self.import_requested)
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 2)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)


class TodayView(QStackedWidget):
    """The rep's start page; ``open_record(entity, id)`` when an item is opened."""

    open_record = Signal(str, str)
    demo_requested = Signal()
    import_requested = Signal()

    def __init__(self, services, *, demo_available: bool = False, now=None, executor=None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._services = services
        self._executor = executor if executor is not None else InlineExecutor()
        self.loading = False
        self._now = now  # tests pin the clock
        self.welcome = WelcomeView(demo_available)
        self.welcome.demo_requested.connect(self.demo_requested)
        self.welcome.import_requested.connect(self.import_requested)
        self.board = named(QWidget(), "Page")
        layout = QVBoxLayout(self.board)
        layout.setContentsMargins(16, 14, 16, 14)
        layout.setSpacing(12)
        self.greeting = named(QLabel(), "DetailTitle")
        layout.addWidget(self.greeting)
        tiles = QHBoxLayout()
        self.tiles = {k: _Tile(t) for k, t in (("overdue", "Overdue"), ("today", "Due today"),
                                                ("upcoming", "Next 7 days"), ("stale", "Quiet deals"),
                                                ("pipeline", "Open pipeline"))}
        for tile in self.tiles.values():
            tiles.addWidget(tile)
        layout.addLayout(tiles)
        grid = QGridLayout()
        grid.setSpacing(12)
        self.overdue = _Section("Overdue", "Nothing overdue. Nice.")
        self.today = _Section("Today", "Nothing due today.")
        self.upcoming = _Section("Upcoming meetings and visits", "No meetings in the next 7 days.")
        self.stale = _Section("Deals with no activity for 30 days", "Every open deal had attention lately.")
        grid.addWidget(self.overdue, 0, 0)
        grid.addWidget(self.today, 0, 1)
        grid.addWidget(self.upcoming, 1, 0)
        grid.addWidget(self.stale, 1, 1)
        layout.addLayout(grid, 1)
        for section in (self.overdue, self.today, self.upcoming, self.stale):
            section.list.itemActivated.connect(
                lambda item: self.open_record.emit(*item.data(Qt.ItemDataRole.UserRole)))
        self.addWidget(self.welcome)
        self.addWidget(self.board)
        self.reload()

    def is_empty_database(self) -> bool:
        s = self._services
        # one row each, not count(): counting a million contacts would stall the window opening
        return not any(service.list(limit=1).items for service in (s.contacts, s.companies, s.deals, s.leads))

    def reload(self) -> None:
        """Read the agenda again, on the executor's reader (a burst of asks coalesces into one)."""
        now = self._now or datetime.now(timezone.utc)
        self.loading = True
        self._executor.read(lambda: read_today(self._services, now), done=self._show, failed=self._failed,
                            context=self, key=("today", id(self)), label="today")

    def _failed(self, exc: BaseException) -> None:
        self.loading = False
        log.error("reading the Today page failed: %s", exc)

    def _show(self, data: TodayData) -> None:
        self.loading = False
        if data.empty:
            self.setCurrentWidget(self.welcome)
            return
        self.setCurrentWidget(self.board)

        def rows(activities, show_date: bool):
            return [(_KIND_ICON.get(a.kind, "task"),
                     f"{a.subject}   ·   {when(a.due_at) if show_date else a.due_at.astimezone().strftime('%H:%M')}",
                     "activity", a.id) for a in activities]

        counts = data.counts
        self.overdue.set_items(rows(data.overdue, True), counts.get("overdue"))
        self.today.set_items(rows(data.today, False), counts.get("today"))
        self.upcoming.set_items(rows(data.upcoming, True), counts.get("meetings"))
        self.stale.set_items([("deals", f"{d.title}   ·   {d.company_name or '—'}   ·   "
                                        f"{money(d.amount_cents, d.currency)}", "deal", d.id) for d in data.stale],
                             counts.get("stale"))
        for key in ("overdue", "today", "upcoming", "stale"):  # true counts, never the length of a capped list
            self.tiles[key].value.setText(f"{counts.get(key, 0):,}".replace(",", "\u2009"))
        self.tiles["pipeline"].value.setText(money(data.pipeline_cents))
        local = (self._now or datetime.now(timezone.utc)).astimezone()
        part = "morning" if local.hour < 12 else "afternoon" if local.hour < 18 else "evening"
        self.greeting.setText(f"Good {part} · {local.strftime('%A %d %B')}")
