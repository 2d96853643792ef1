"""The dashboard's numbers: one aggregate query per chart, turned into plain chart data.

No Qt here: this runs on a worker thread and in tests. Each chart loader takes the plugin
context and the :class:`Filters` and returns a :class:`Chart` (categories, series, and the same
numbers as CSV rows). Every sum and count is computed by the host in SQL through
``ctx.<records>.aggregate`` (see :mod:`.host_api`); the plugin only fills in empty months and
weeks, names the reps and formats.

What the filters mean, per chart:

* date range (``start``..``end``, both days included, UTC): when the thing happened — a deal
  won or lost (``closed_at``), an activity done (``done_at``), a lead created (``created_at``).
* pipeline value by stage and the forecast are snapshots of the open deals *now*; the date
  range does not apply to them. The forecast covers deals expected to close from this month on
  for :data:`FORECAST_MONTHS` months, plus open deals whose expected close has passed ("Overdue").
* owner and team apply to every chart (the record's ``owner_id`` / ``team_id``).

Money is summed per currency (a deal's amount is never added to one in another currency):
each currency is its own series.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Callable

from . import host_api

FORECAST_MONTHS = 6
#: reps shown one by one in the activities chart; the rest are summed as "Others"
MAX_REPS = 8
NO_SOURCE = "(no source)"
UNASSIGNED = "(unassigned)"


@dataclass(frozen=True)
class Filters:
    """What the dashboard shows: ``start``..``end`` (days, inclusive) and optional owner / team."""

    start: date
    end: date
    owner_id: str | None = None
    team_id: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"date range: the end {self.end.isoformat()} is before the start {self.start.isoformat()}")

    def people(self) -> dict[str, Any]:
        """The owner / team filters as aggregate filters."""
        out: dict[str, Any] = {}
        if self.owner_id:
            out["owner_id"] = self.owner_id
        if self.team_id:
            out["team_id"] = self.team_id
        return out

    def range_of(self, field_name: str) -> dict[str, Any]:
        """``field >= start`` and ``field < end + 1 day`` as aggregate filters."""
        return {f"{field_name}__gte": self.start, f"{field_name}__lt": self.end + timedelta(days=1)}


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """One chart's data. ``kind``: ``bar`` (series side by side), ``stacked`` or ``kpi`` (tiles).

    ``unit`` says how values read: ``count``, ``money`` (currency units), ``percent``, ``days``.
    ``csv_header`` / ``csv_rows`` are the numbers behind the chart, as exported.
    """

    key: str
    title: str
    subtitle: str
    kind: str
    unit: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    csv_header: tuple[str, ...]
    csv_rows: tuple[tuple[Any, ...], ...]
    #: seconds the host took for this chart's aggregate queries
    seconds: float = 0.0

    @property
    def is_empty(self) -> bool:
        return not self.categories or all(not any(s.values) for s in self.series)


@dataclass(frozen=True)
class Dashboard:
    filters: Filters
    charts: tuple[Chart, ...]
    #: user id -> display name; (team id, label) of each team (for the filters)
    owners: dict[str, str] = field(default_factory=dict)
    teams: tuple[tuple[str, str], ...] = ()

    def chart(self, key: str) -> Chart:
        return next(c for c in self.charts if c.key == key)


# -- calendar helpers -----------------------------------------------------------------------------


def months_between(start: date, end: date) -> list[str]:
    """``YYYY-MM`` of every month from start's to end's, inclusive."""
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def weeks_between(start: date, end: date) -> list[str]:
    """ISO date of the Monday of every week touching start..end."""
    monday = start - timedelta(days=start.weekday())
    out = []
    while monday <= end:
        out.append(monday.isoformat())
        monday += timedelta(days=7)
    return out


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    years, month = divmod(day.month - 1 + months, 12)
    return date(day.year + years, month + 1, 1)


def month_label(key: str) -> str:
    year, month = key.split("-")
    return f"{('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')[int(month) - 1]} {year[2:]}"


def _money(cents: Any) -> float:
    return round((cents or 0) / 100.0, 2)


def _currencies(rows: list[dict]) -> list[str]:
    return sorted({r["currency"] for r in rows if r.get("currency")}) or ["EUR"]


def _by_currency(rows: list[dict], key: str, categories: list[str], measure: str) -> tuple[Series, ...]:
    out = []
    for currency in _currencies(rows):
        values = {r[key]: _money(r[measure]) for r in rows if r["currency"] == currency}
        out.append(Series(currency, tuple(values.get(c, 0.0) for c in categories)))
    return tuple(out)


# -- the charts -----------------------------------------------------------------------------------


def pipeline_by_stage(ctx: Any, filters: Filters, today: date) -> Chart:
    rows = host_api.aggregate(ctx, "deals", ["pipeline_name", "stage_position", "stage_name", "currency"],
                              {"deals": "count", "value": "sum:amount_cents"}, status="open", **filters.people())
    pipelines = sorted({r["pipeline_name"] for r in rows})
    keys: list[tuple] = []
    for r in rows:
        key = (r["pipeline_name"], r["stage_position"], r["stage_name"])
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda k: (k[0], k[1]))
    labels = [f"{p}: {s}" if len(pipelines) > 1 else s for p, _, s in keys]
    series = []
    for currency in _currencies(rows):
        values = {(r["pipeline_name"], r["stage_position"], r["stage_name"]): _money(r["value"])
                  for r in rows if r["currency"] == currency}
        series.append(Series(currency, tuple(values.get(k, 0.0) for k in keys)))
    csv_rows = tuple((label, r["currency"], r["deals"], f"{_money(r['value']):.2f}")
                     for key, label in zip(keys, labels) for r in rows
                     if (r["pipeline_name"], r["stage_position"], r["stage_name"]) == key)
    return Chart("pipeline", "Pipeline value by stage", "Open deals now", "bar", "money", tuple(labels),
                 tuple(series), ("stage", "currency", "deals", "value"), csv_rows)


def won_lost_per_month(ctx: Any, filters: Filters, today: date) -> Chart:
    rows = host_api.aggregate(ctx, "deals", ["closed_at:month", "status"], {"deals": "count"},
                              status=["won", "lost"], **filters.range_of("closed_at"), **filters.people())
    months = months_between(filters.start, filters.end)
    counts = {(r["closed_at:month"], r["status"]): r["deals"] for r in rows}
    won = tuple(float(counts.get((m, "won"), 0)) for m in months)
    lost = tuple(float(counts.get((m, "lost"), 0)) for m in months)
    return Chart("won_lost", "Won and lost deals per month", "Deals closed in the date range", "bar", "count",
                 tuple(month_label(m) for m in months), (Series("Won", won), Series("Lost", lost)),
                 ("month", "won", "lost"), tuple((m, int(w), int(lo)) for m, w, lo in zip(months, won, lost)))


def win_rate(ctx: Any, filters: Filters, today: date) -> Chart:
    rows = host_api.aggregate(ctx, "deals", ["status"], {"deals": "count", "cycle": "avg:cycle_days"},
                              status=["won", "lost"], **filters.range_of("closed_at"), **filters.people())
    by_status = {r["status"]: r for r in rows}
    won = int(by_status.get("won", {}).get("deals") or 0)
    lost = int(by_status.get("lost", {}).get("deals") or 0)
    rate = 100.0 * won / (won + lost) if won + lost else 0.0
    cycle = by_status.get("won", {}).get("cycle")
    cycle_days = round(float(cycle), 1) if cycle is not None else 0.0
    metrics = (("Win rate", rate, "percent"), ("Won", float(won), "count"), ("Lost", float(lost), "count"),
               ("Avg. sales cycle", cycle_days, "days"))
    return Chart("win_rate", "Win rate and sales cycle",
                 "Won ÷ (won + lost) of deals closed in the range; cycle: days from creation to won",
                 "kpi", "mixed", tuple(m[0] for m in metrics), (Series("value", tuple(m[1] for m in metrics)),),
                 ("metric", "value", "unit"),
                 tuple((name, round(value, 1) if unit != "count" else int(value), unit) for name, value, unit in metrics))


def activities_per_rep(ctx: Any, filters: Filters, today: date, owners: dict[str, str] | None = None) -> Chart:
    rows = host_api.aggregate(ctx, "activities", ["done_at:week", "owner_id"], {"activities": "count"},
                              is_done=True, **filters.range_of("done_at"), **filters.people())
    weeks = weeks_between(filters.start, filters.end)
    owners = owners or {}
    totals: dict[str | None, int] = {}
    for r in rows:
        totals[r["owner_id"]] = totals.get(r["owner_id"], 0) + r["activities"]
    ranked = sorted(totals, key=lambda o: (-totals[o], owners.get(o or "", o or "")))
    shown, others = ranked[:MAX_REPS], set(ranked[MAX_REPS:])

    def name(owner: str | None) -> str:
        return owners.get(owner) or unknown_user(owner) if owner else UNASSIGNED

    series = []
    for owner in shown:
        counts = {r["done_at:week"]: r["activities"] for r in rows if r["owner_id"] == owner}
        series.append(Series(name(owner), tuple(float(counts.get(w, 0)) for w in weeks)))
    if others:
        counts = {}
        for r in rows:
            if r["owner_id"] in others:
                counts[r["done_at:week"]] = counts.get(r["done_at:week"], 0) + r["activities"]
        series.append(Series(f"Others ({len(others)})", tuple(float(counts.get(w, 0)) for w in weeks)))
    csv_rows = tuple((r["done_at:week"], name(r["owner_id"]), r["owner_id"] or "", r["activities"]) for r in rows)
    labels = tuple(date.fromisoformat(w).strftime("%d %b") for w in weeks)
    return Chart("activities", "Activities per rep per week", "Done activities, by the week they were done",
                 "stacked", "count", labels, tuple(series), ("week", "rep", "owner_id", "activities"), csv_rows)


def forecast(ctx: Any, filters: Filters, today: date) -> Chart:
    first = today.replace(day=1)
    months = [f"{add_months(first, i):%Y-%m}" for i in range(FORECAST_MONTHS)]
    horizon_end = add_months(first, FORECAST_MONTHS)
    measures = {"deals": "count", "weighted": "sum:weighted_amount_cents", "value": "sum:amount_cents"}
    # one query: every open deal expected to close before the horizon, by month; months before
    # this one are then folded into "overdue" (a few dozen rows, already summed in SQL)
    by_month = host_api.aggregate(ctx, "deals", ["expected_close:month", "currency"], measures, status="open",
                                  expected_close__lt=horizon_end, **filters.people())
    folded: dict[tuple[str, str], dict[str, Any]] = {}
    for r in by_month:
        month = r["expected_close:month"] if r["expected_close:month"] >= months[0] else "overdue"
        row = folded.setdefault((month, r["currency"]), {"expected_close:month": month, "currency": r["currency"],
                                                         "deals": 0, "weighted": 0.0, "value": 0})
        row["deals"] += r["deals"]
        row["weighted"] += r["weighted"] or 0.0
        row["value"] += r["value"] or 0
    rows = sorted(folded.values(), key=lambda r: (r["expected_close:month"] != "overdue", r["expected_close:month"],
                                                 r["currency"]))
    keys = ["overdue", *months]
    labels = ("Overdue", *(month_label(m) for m in months))
    series = tuple(Series(f"{s.name} weighted", s.values) for s in _by_currency(rows, "expected_close:month", keys,
                                                                                 "weighted"))
    csv_rows = tuple((r["expected_close:month"], r["currency"], r["deals"], f"{_money(r['value']):.2f}",
                      f"{_money(r['weighted']):.2f}") for r in rows)
    return Chart("forecast", "Forecast weighted by stage probability",
                 f"Open deals by expected close, next {FORECAST_MONTHS} months (amount × stage probability)",
                 "bar", "money", labels, series, ("month", "currency", "deals", "value", "weighted_value"), csv_rows)


def leads_by_source(ctx: Any, filters: Filters, today: date) -> Chart:
    rows = host_api.aggregate(ctx, "leads", ["source"], {"leads": "count"},
                              **filters.range_of("created_at"), **filters.people())
    rows = sorted(rows, key=lambda r: (-r["leads"], r["source"] or ""))
    labels = tuple(r["source"] or NO_SOURCE for r in rows)
    return Chart("leads", "Leads by source", "Leads created in the date range", "bar", "count", labels,
                 (Series("Leads", tuple(float(r["leads"]) for r in rows)),), ("source", "leads"),
                 tuple((label, r["leads"]) for label, r in zip(labels, rows)))


#: every chart in dashboard order: key -> loader(ctx, filters, today)
CHARTS: dict[str, Callable[..., Chart]] = {
    "pipeline": pipeline_by_stage,
    "won_lost": won_lost_per_month,
    "win_rate": win_rate,
    "activities": activities_per_rep,
    "forecast": forecast,
    "leads": leads_by_source,
}


#: the team filter's note: the server sends a user's team id, never the team's name
TEAM_NAMES_UNKNOWN = "Team names are not synced to this app: each team is shown by its members."
#: members named in a team's label before "and N more"
TEAM_LABEL_MEMBERS = 2


def unknown_user(user_id: str) -> str:
    """How a user id that is not among this app's users is shown (a rep not synced here)."""
    return f"User {user_id[:8]} (not on this device)"


def team_label(members: list[str]) -> str:
    """``Team of Alice Adams, Bob Brown and 3 more``: a team by the names of its members."""
    names = sorted(members, key=str.casefold)
    shown = ", ".join(names[:TEAM_LABEL_MEMBERS])
    more = len(names) - TEAM_LABEL_MEMBERS
    return f"Team of {shown}" + (f" and {more} more" if more > 0 else "")


def people(users: list[Any]) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """(user id -> name, ((team id, label), ...) by label) from the users the app knows.

    The app knows every user's name but no team's (see :data:`TEAM_NAMES_UNKNOWN`), so a team is
    labelled by its members; two teams with the same members get their ids added to tell them apart.
    """
    owners = {u.id: u.display_name or u.username for u in users}
    members: dict[str, list[str]] = {}
    for u in users:
        if u.team_id:
            members.setdefault(u.team_id, []).append(owners[u.id])
    labels = {team: team_label(names) for team, names in members.items()}
    repeated = {label for label in labels.values() if list(labels.values()).count(label) > 1}
    teams = tuple(sorted(((team, f"{label} ({team[:8]})" if label in repeated else label)
                          for team, label in labels.items()), key=lambda t: (t[1].casefold(), t[0])))
    return owners, teams


def load(ctx: Any, filters: Filters, today: date | None = None) -> Dashboard:
    """Every chart for ``filters`` (runs the aggregate queries; call it off the GUI thread)."""
    today = today or date.today()
    owners, teams = people(host_api.users(ctx))
    charts = []
    for key, loader in CHARTS.items():
        started = time.perf_counter()
        chart = loader(ctx, filters, today, owners) if key == "activities" else loader(ctx, filters, today)
        charts.append(replace(chart, seconds=time.perf_counter() - started))
    return Dashboard(filters, tuple(charts), owners, teams)
