"""The reporting plugin's dashboard against a small data set whose numbers are worked out by hand.

Fixture (default pipeline: Prospecting 10 %, Qualified 25 %, Proposal 50 %, Negotiation 75 %,
Won, Lost), "today" is 2025-06-15, date range 2025-01-01 .. 2025-06-15:

  deal  owner  team   stage        amount  created     closed      expected close
  A1    alice  north  Prospecting  1000    -           -           2025-07-10
  A2    alice  north  Proposal     2000    -           -           2025-08-05
  B1    bob    south  Proposal     4000    -           -           2025-07-20
  B2    bob    south  Negotiation  1000    -           -           2025-05-01 (overdue)
  W1    alice  north  Won          3000    2025-01-10  2025-02-09  (30 days)
  W2    bob    south  Won          5000    2025-02-01  2025-03-13  (40 days)
  L1    bob    south  Lost         1000    2025-03-01  2025-03-21
  W0    alice  north  Won          9999    2024-10-01  2024-11-01  (outside the range)

So: open pipeline Prospecting 1000, Proposal 6000, Negotiation 1000; won/lost Feb 1/0, Mar 1/1;
win rate 2 of 3 = 66.7 %, cycle (30 + 40) / 2 = 35 days; forecast overdue 1000 × 75 % = 750,
Jul 1000 × 10 % + 4000 × 50 % = 2100, Aug 2000 × 50 % = 1000. Bob only: Proposal 4000,
Negotiation 1000; win rate 1 of 2 = 50 %, cycle 40 days.
Activities done in the week of Monday 2025-06-02: alice 2, bob 1 (and one open one, not counted).
Leads created in the range: Website 2, Referral 1 (and one from 2024, not counted).
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[2]
REPORTING = REPO / "plugins" / "reporting"
TODAY = date(2025, 6, 15)


def _at(day: str) -> str:
    return f"{day} 10:00:00.000000"


@pytest.fixture
def fixture_data(crm_plugin):
    host, ctx = crm_plugin(REPORTING)
    assert host.records["reporting"].state.value == "active", host.records["reporting"].error
    services = host.core.services
    alice = services.users.create(username="alice", display_name="Alice Adams", team_id="north")
    bob = services.users.create(username="bob", display_name="Bob Brown", team_id="south")
    pipeline = services.pipelines.default()
    stage = {s.name: s.id for s in services.pipelines.stages(pipeline.id)}
    people = {"alice": (alice.id, "north"), "bob": (bob.id, "south")}
    deals = [("A1", "alice", "Prospecting", 1000, None, None, "2025-07-10"),
             ("A2", "alice", "Proposal", 2000, None, None, "2025-08-05"),
             ("B1", "bob", "Proposal", 4000, None, None, "2025-07-20"),
             ("B2", "bob", "Negotiation", 1000, None, None, "2025-05-01"),
             ("W1", "alice", "Won", 3000, "2025-01-10", "2025-02-09", "2025-02-01"),
             ("W2", "bob", "Won", 5000, "2025-02-01", "2025-03-13", "2025-03-01"),
             ("L1", "bob", "Lost", 1000, "2025-03-01", "2025-03-21", "2025-03-30"),
             ("W0", "alice", "Won", 9999, "2024-10-01", "2024-11-01", "2024-11-01")]
    dated: list[tuple[str, str, str]] = []
    for title, who, stage_name, amount, created, closed, close in deals:
        owner, team = people[who]
        deal = services.deals.create(title=title, stage_id=stage[stage_name], amount=amount, expected_close=close,
                                     owner_id=owner, team_id=team)
        if created:
            dated.append((deal.id, created, closed))
    activities = []
    for who, done in (("alice", "2025-06-02"), ("alice", "2025-06-04"), ("bob", "2025-06-06"), ("alice", None)):
        owner, team = people[who]
        activity = services.activities.create(kind="call", subject=f"call {who}", owner_id=owner, team_id=team,
                                              due_at=datetime(2025, 6, 20, 9, tzinfo=timezone.utc))
        activities.append((activity.id, done))
    leads = []
    for source, created in (("Website", "2025-02-01"), ("Website", "2025-04-01"), ("Referral", "2025-05-01"),
                            ("Referral", "2024-05-01")):
        leads.append((services.leads.create(title=f"lead {source}", source=source).id, created))
    # the past: timestamps the services stamp "now" are moved back (test set-up only)
    with services.db.write_engine.begin() as conn:
        for deal_id, created, closed in dated:
            conn.execute(text("UPDATE deals SET created_at = :c, stage_changed_at = :s WHERE id = :i"),
                         {"c": _at(created), "s": _at(closed), "i": deal_id})
        for activity_id, done in activities:
            conn.execute(text("UPDATE activities SET done_at = :d WHERE id = :i"),
                         {"d": _at(done) if done else None, "i": activity_id})
        for lead_id, created in leads:
            conn.execute(text("UPDATE leads SET created_at = :c WHERE id = :i"), {"c": _at(created), "i": lead_id})
    return host, ctx, alice, bob


class Window:
    """The main window as ``ctx.ui`` sees it: the status bar messages it was asked to show."""

    def __init__(self):
        self.status: list[str] = []

    def open_record(self, entity, record_id):
        pass

    def show_status(self, text, timeout_ms=4000):
        self.status.append(text)


def _panel(qtbot, ctx, host=None):
    from crm_desktop.ui.plugins.ui_facade import ui_factory
    from crm_plugins.reporting.panel import DashboardPanel

    window = Window()
    if host is not None:
        host.set_ui_factory(ui_factory(window, host))
    panel = DashboardPanel(ctx, today=lambda: TODAY)
    panel.window_status = window.status
    qtbot.addWidget(panel)
    panel.resize(1200, 1000)
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        panel.start_edit.setDate(date(2025, 1, 1))
    qtbot.waitUntil(lambda: panel.dashboard is not None and panel.dashboard.filters.start == date(2025, 1, 1),
                    timeout=10_000)
    return panel


def _values(chart):
    return {s.name: dict(zip(chart.categories, s.values)) for s in chart.series}


def test_dashboard_numbers_match_the_hand_computed_fixture(qtbot, fixture_data):
    host, ctx, alice, bob = fixture_data
    panel = _panel(qtbot, ctx, host)
    board = panel.dashboard
    assert panel.error is None

    pipeline = board.chart("pipeline")
    assert pipeline.categories == ("Prospecting", "Proposal", "Negotiation")
    assert _values(pipeline) == {"EUR": {"Prospecting": 1000.0, "Proposal": 6000.0, "Negotiation": 1000.0}}

    won_lost = _values(board.chart("won_lost"))
    assert board.chart("won_lost").categories == ("Jan 25", "Feb 25", "Mar 25", "Apr 25", "May 25", "Jun 25")
    assert won_lost["Won"] == {"Jan 25": 0, "Feb 25": 1, "Mar 25": 1, "Apr 25": 0, "May 25": 0, "Jun 25": 0}
    assert won_lost["Lost"]["Mar 25"] == 1 and sum(won_lost["Lost"].values()) == 1

    rate = _values(board.chart("win_rate"))["value"]
    assert rate["Win rate"] == pytest.approx(200 / 3) and rate["Won"] == 2 and rate["Lost"] == 1
    assert rate["Avg. sales cycle"] == 35.0

    activities = board.chart("activities")
    by_rep = _values(activities)
    week = date(2025, 6, 2).strftime("%d %b")
    assert by_rep["Alice Adams"][week] == 2 and by_rep["Bob Brown"][week] == 1
    assert sum(sum(v.values()) for v in by_rep.values()) == 3

    forecast = board.chart("forecast")
    assert forecast.categories[:4] == ("Overdue", "Jun 25", "Jul 25", "Aug 25")
    assert _values(forecast)["EUR weighted"] == {"Overdue": 750.0, "Jun 25": 0.0, "Jul 25": 2100.0, "Aug 25": 1000.0,
                                                 "Sep 25": 0.0, "Oct 25": 0.0, "Nov 25": 0.0}

    assert _values(board.chart("leads")) == {"Leads": {"Website": 2.0, "Referral": 1.0}}

    # the owner filter (names come from the users): Bob's numbers only
    assert panel.owner_combo.findText("Bob Brown") > 0
    # the app knows no team names: a team is shown by its members, and the filter says so
    assert [panel.team_combo.itemText(i) for i in range(panel.team_combo.count())] == [
        "All teams", "Team of Alice Adams", "Team of Bob Brown"]
    assert panel.team_combo.itemData(2) == "south"
    assert "not synced" in panel.team_combo.toolTip()
    assert "Team id south" in panel.team_combo.itemData(2, Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        panel.owner_combo.setCurrentIndex(panel.owner_combo.findText("Bob Brown"))
    board = panel.dashboard
    assert board.filters.owner_id == bob.id
    assert _values(board.chart("pipeline")) == {"EUR": {"Proposal": 4000.0, "Negotiation": 1000.0}}
    rate = _values(board.chart("win_rate"))["value"]
    assert rate["Win rate"] == 50.0 and rate["Avg. sales cycle"] == 40.0
    assert list(_values(board.chart("activities"))) == ["Bob Brown"]


def test_a_stage_change_refreshes_the_open_dashboard(qtbot, fixture_data):
    host, ctx, alice, bob = fixture_data
    panel = _panel(qtbot, ctx, host)
    hooks = sys.modules["crm_plugins.reporting.reporting"]
    hooks._panels.add(panel)
    services = host.core.services
    stage = {s.name: s.id for s in services.pipelines.stages(services.pipelines.default().id)}
    a1 = next(d for d in services.deals.list(limit=50).items if d.title == "A1")
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        services.deals.move_to_stage(a1.id, stage["Qualified"])  # publishes deal.stage_changed
    assert _values(panel.dashboard.chart("pipeline"))["EUR"] == {"Qualified": 1000.0, "Proposal": 6000.0,
                                                                  "Negotiation": 1000.0}


def test_each_chart_exports_png_and_csv(qtbot, fixture_data, tmp_path):
    """The Save buttons ask the host (ctx.ui.save_file) for a file and let it write it: no QSaveFile or
    open() of the plugin's own outside its folder (the tripwire of the test host would block that)."""
    host, ctx, alice, bob = fixture_data
    panel = _panel(qtbot, ctx, host)
    from PySide6.QtGui import QImage

    chosen: list[Path] = []
    asked: list[tuple[str, str, str]] = []
    ctx.ui.ask_save_path = lambda parent, title, start, filters: (
        asked.append((title, Path(start).name, filters)) or (str(chosen[-1]), filters))
    for key in ("pipeline", "won_lost", "win_rate", "activities", "forecast", "leads"):
        png, data = tmp_path / f"{key}.png", tmp_path / f"{key}.csv"
        chosen.append(png)
        panel.cards[key].png_button.click()
        chosen.append(data)
        panel.cards[key].csv_button.click()
        assert png.is_file() and data.is_file()
        image = QImage(str(png))
        assert not image.isNull() and image.width() == 960 and image.height() == 540
        # not a blank image: the bars / tiles and the title put other colours on it
        assert len({image.pixel(x, y) for x in range(0, 960, 16) for y in range(0, 540, 16)}) > 3
        assert panel.status.text() == f"Saved {panel.dashboard.chart(key).title} to {data}"
    assert asked[0] == ("Save “Pipeline value by stage”", "pipeline-20250101-20250615.png", "PNG image (*.png)")
    assert asked[1][1:] == ("pipeline-20250101-20250615.csv", "CSV file (*.csv)")
    rows = list(csv.reader(io.StringIO((tmp_path / "pipeline.csv").read_text("utf-8-sig"))))
    assert rows == [["stage", "currency", "deals", "value"], ["Prospecting", "EUR", "1", "1000.00"],
                    ["Proposal", "EUR", "2", "6000.00"], ["Negotiation", "EUR", "1", "1000.00"]]
    rows = list(csv.reader(io.StringIO((tmp_path / "win_rate.csv").read_text("utf-8-sig"))))
    assert rows == [["metric", "value", "unit"], ["Win rate", "66.7", "percent"], ["Won", "2", "count"],
                    ["Lost", "1", "count"], ["Avg. sales cycle", "35.0", "days"]]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    # a folder that does not exist: the host says so in one sentence, no file, the panel claims nothing
    before = panel.status.text()
    chosen.append(tmp_path / "missing" / "leads.csv")
    assert panel.ask_export("leads", "csv") is None
    assert panel.window_status == [f"Could not save leads.csv in {tmp_path / 'missing'}: No such file or directory."]
    assert panel.status.text() == before and not (tmp_path / "missing").exists()
    # cancelled: nothing written, nothing said
    ctx.ui.ask_save_path = lambda *args: ("", "")
    assert panel.ask_export("leads", "png") is None and len(panel.window_status) == 1


def test_sync_finished_refreshes_the_open_dashboard(qtbot, fixture_data):
    from crm_desktop.plugin_api import Event

    host, ctx, alice, bob = fixture_data
    panel = _panel(qtbot, ctx, host)
    sys.modules["crm_plugins.reporting.reporting"]._panels.add(panel)
    services = host.core.services
    stage = {s.name: s.id for s in services.pipelines.stages(services.pipelines.default().id)}
    # a deal arrives as sync writes it (no deal.* event reaches the plugin), then sync says it finished
    with services.db.write_engine.begin() as conn:
        conn.execute(text("UPDATE deals SET stage_id = :s WHERE title = 'A1'"), {"s": stage["Negotiation"]})
    with qtbot.waitSignal(panel.loaded, timeout=10_000):
        host.core.events.publish(Event("sync.finished", {"pushed": 0, "pulled": 1, "conflicts": 0}, "sync"))
    assert _values(panel.dashboard.chart("pipeline"))["EUR"] == {"Proposal": 6000.0, "Negotiation": 2000.0}


def test_a_backwards_date_range_is_refused_in_the_status_line(qtbot, fixture_data):
    host, ctx, alice, bob = fixture_data
    panel = _panel(qtbot, ctx, host)
    before = panel.dashboard
    panel.end_edit.setDate(date(2024, 12, 1))
    assert panel.status.text() == "date range: the end 2024-12-01 is before the start 2025-01-01"
    assert panel.dashboard is before
