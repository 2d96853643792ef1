"""Offline deal and lead scoring learned from the team's own won/lost history.

A naive Bayes classifier (as Odoo's predictive lead scoring) over a few
categorical features:

- deals: ``stage`` (the open stage a deal is in; for a closed deal, the stage it
  left when won or lost, from the moves the plugin recorded), ``source`` (of the
  lead the deal was converted from), ``amount`` band, number of ``activities``
  (banded) and ``recency`` of the last activity (banded);
- leads: ``source``, ``details`` (e-mail / phone given), ``company`` known,
  ``activities`` and ``recency``.

``P(won | features) = sigmoid(log prior odds + sum of log likelihood ratios)`` with
Laplace (add-one) smoothing per feature. Each feature's log likelihood ratio is
the factor shown beside a score ("stage = Negotiation: 3.0x the odds"). A value
never seen in training, or missing, contributes nothing.

The core (:class:`NaiveBayes`, the band functions) is pure Python over tuples so
200k deals score in well under a second; :func:`score_deals` reads the CRM through
the facade page by page.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from . import crm_tools

DEAL_FEATURES = ("stage", "source", "amount", "activities", "recency")
LEAD_FEATURES = ("source", "details", "company", "activities", "recency")
FEATURE_LABELS = {"stage": "stage", "source": "source", "amount": "amount", "activities": "activities",
                  "recency": "last activity", "details": "contact details", "company": "company"}

# amounts in cents: < 1k, 1k-5k, 5k-20k, 20k-100k, >= 100k
_AMOUNT_EDGES = (100_000, 500_000, 2_000_000, 10_000_000)
_AMOUNT_NAMES = ("< 1k", "1k-5k", "5k-20k", "20k-100k", ">= 100k")
_COUNT_EDGES = (1, 3, 6)
_COUNT_NAMES = ("none", "1-2", "3-5", "6+")
_DAY_EDGES = (7, 30, 90)
_DAY_NAMES = ("< 7 days", "7-30 days", "30-90 days", "90+ days")


def amount_band(cents: int) -> str:
    return _AMOUNT_NAMES[bisect_right(_AMOUNT_EDGES, cents)]


def count_band(n: int) -> str:
    return _COUNT_NAMES[bisect_right(_COUNT_EDGES, n)]


def recency_band(days: float | None) -> str:
    return "never" if days is None else _DAY_NAMES[bisect_right(_DAY_EDGES, days)]


@dataclass(frozen=True)
class Factor:
    """One feature's pull on a score: ``weight`` is its log likelihood ratio (> 0 favours winning)."""

    feature: str
    value: str
    weight: float

    @property
    def odds(self) -> float:
        return math.exp(self.weight)

    def __str__(self) -> str:
        direction = "+" if self.weight >= 0 else "-"
        return f"{direction} {FEATURE_LABELS.get(self.feature, self.feature)} {self.value} ({self.odds:.2f}x odds)"

    def to_json(self) -> dict:
        return {"feature": self.feature, "value": self.value, "weight": round(self.weight, 4),
                "odds": round(self.odds, 3)}


@dataclass
class Score:
    """A record's chance of being won, and why."""

    entity: str
    id: str
    name: str
    probability: float
    factors: list[Factor] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"entity": self.entity, "id": self.id, "name": self.name,
                "probability": round(self.probability, 4), "factors": [f.to_json() for f in self.factors]}


class NotEnoughHistory(Exception):
    """There is no won or no lost record to learn from; the message says what is missing."""


class NaiveBayes:
    """Categorical naive Bayes for won/lost over rows of equal length (None = missing)."""

    def __init__(self, features: Sequence[str]):
        self.features = tuple(features)
        self.won = 0
        self.lost = 0
        self._weights: list[dict[str, float]] = []
        self.prior = 0.0

    def fit(self, rows: Iterable[Sequence[str | None]], labels: Iterable[bool]) -> "NaiveBayes":
        n = len(self.features)
        counts = [(defaultdict(int), defaultdict(int)) for _ in range(n)]  # (won, lost) per feature
        present = [[0, 0] for _ in range(n)]
        won = lost = 0
        for row, label in zip(rows, labels):
            side = 0 if label else 1
            if label:
                won += 1
            else:
                lost += 1
            for i, value in enumerate(row):
                if value is not None:
                    counts[i][side][value] += 1
                    present[i][side] += 1
        if not won or not lost:
            missing = "won" if not won else "lost"
            raise NotEnoughHistory(f"no {missing} deals to learn from yet ({won} won, {lost} lost); scores appear "
                                   f"once the team has both won and lost some")
        self.won, self.lost = won, lost
        self.prior = math.log(won / lost)
        self._weights = []
        for i in range(n):
            w, l = counts[i]
            values = set(w) | set(l)
            k = len(values) or 1
            nw, nl = present[i]
            self._weights.append({v: math.log((w.get(v, 0) + 1) / (nw + k)) - math.log((l.get(v, 0) + 1) / (nl + k))
                                  for v in values})
        return self

    def logit(self, row: Sequence[str | None]) -> float:
        total = self.prior
        for weights, value in zip(self._weights, row):
            if value is not None:
                total += weights.get(value, 0.0)
        return total

    def probability(self, row: Sequence[str | None]) -> float:
        return _sigmoid(self.logit(row))

    def factors(self, row: Sequence[str | None]) -> list[Factor]:
        out = [Factor(name, value, weights[value]) for name, weights, value in zip(self.features, self._weights, row)
               if value is not None and abs(weights.get(value, 0.0)) > 1e-9]
        out.sort(key=lambda f: -abs(f.weight))
        return out

    def score_many(self, rows: Sequence[Sequence[str | None]]) -> list[float]:
        """Probabilities for many rows (the fast path the benchmark measures)."""
        weights, prior, exp = self._weights, self.prior, math.exp
        out = []
        append = out.append
        for row in rows:
            total = prior
            for w, value in zip(weights, row):
                if value is not None:
                    total += w.get(value, 0.0)
            append(1.0 / (1.0 + exp(-total)) if total > -700 else 0.0)
        return out


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ------------------------------------------------------------------ deal features

@dataclass
class ActivityStats:
    """Per linked record: how many activities, and when the last one happened."""

    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[str, datetime] = field(default_factory=dict)

    def add(self, key: str | None, at: datetime | None) -> None:
        if key is None:
            return
        self.count[key] += 1
        if at is not None:
            previous = self.last.get(key)
            if previous is None or at > previous:
                self.last[key] = at


def deal_row(deal: Any, *, stage: str | None, source: str | None, stats: ActivityStats,
             now: datetime) -> tuple[str | None, ...]:
    """The feature values of one deal (``now`` aware UTC; a closed deal is seen as of when it closed)."""
    closed = str(getattr(deal.status, "value", deal.status)) != "open"
    as_of = (deal.stage_changed_at or now) if closed else now
    last = stats.last.get(deal.id)
    days = (as_of - last).total_seconds() / 86400 if last is not None else None
    return (stage, source, amount_band(deal.amount_cents), count_band(stats.count.get(deal.id, 0)),
            recency_band(max(days, 0.0) if days is not None else None))


@dataclass
class ScoreReport:
    """Scores of the open records, best first, with what the model learnt from."""

    entity: str
    scores: list[Score]
    won: int
    lost: int
    message: str | None = None

    def to_json(self) -> dict:
        return {"entity": self.entity, "trained_on": {"won": self.won, "lost": self.lost}, "message": self.message,
                "scores": [s.to_json() for s in self.scores]}


def _utc(now: datetime | None) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc) if now.tzinfo else now.replace(tzinfo=timezone.utc)


def _activity_at(a: Any) -> datetime | None:
    return a.done_at or a.created_at


def activity_stats(ctx: Any) -> tuple[ActivityStats, ActivityStats]:
    """(by deal, by lead) counts and last times, from every activity read page by page."""
    deals, leads = ActivityStats(), ActivityStats()
    # the hot loop of scoring a big CRM: plain dict work on locals, no method calls per row
    deal_count, deal_last, lead_count, lead_last = deals.count, deals.last, leads.count, leads.last
    for a in crm_tools.iter_all(ctx, "activity"):
        at = a.done_at or a.created_at
        for key, count, last in ((a.deal_id, deal_count, deal_last), (a.lead_id, lead_count, lead_last)):
            if key is None:
                continue
            count[key] += 1
            if at is not None:
                previous = last.get(key)
                if previous is None or at > previous:
                    last[key] = at
    return deals, leads


def score_deals(ctx: Any, now: datetime | None = None, *, stats: ActivityStats | None = None,
                last_stage: dict[str, str] | None = None) -> ScoreReport:
    """Learn from won/lost deals, score the open ones; never raises for too little history."""
    now = _utc(now)
    if stats is None:
        stats = activity_stats(ctx)[0]
    if last_stage is None:
        from . import store  # here, not at the top: the pure scorer (and the benchmark) needs no database

        last_stage = store.last_open_stage(ctx)
    sources: dict[str, str] = {}
    for lead in crm_tools.iter_all(ctx, "lead"):
        if lead.converted_deal_id and lead.source:
            sources[lead.converted_deal_id] = lead.source
    names = crm_tools.stage_names(ctx)  # every stage, also one a lost deal left that no deal is in now
    train_rows, labels, open_deals = [], [], []
    deals = list(crm_tools.iter_all(ctx, "deal"))
    counts, lasts = stats.count, stats.last
    amount_cache: dict[int, str] = {}
    for deal in deals:
        status = deal.status  # a StrEnum: compares equal to its value
        is_open = status == "open"
        stage_id = deal.stage_id if is_open else last_stage.get(deal.id)
        stage = names.get(stage_id, stage_id) if stage_id else None
        cents = deal.amount_cents
        band = amount_cache.get(cents)
        if band is None:
            band = amount_cache[cents] = amount_band(cents)
        last = lasts.get(deal.id)
        if last is None:
            recency = "never"
        else:
            as_of = now if is_open else (deal.stage_changed_at or now)
            recency = recency_band(max((as_of - last).total_seconds() / 86400, 0.0))
        row = (stage, sources.get(deal.id), band, count_band(counts.get(deal.id, 0)), recency)
        if is_open:
            open_deals.append((deal, row))
        else:
            train_rows.append(row)
            labels.append(status == "won")
    return _report("deal", DEAL_FEATURES, train_rows, labels, open_deals)


def score_leads(ctx: Any, now: datetime | None = None, *, stats: ActivityStats | None = None) -> ScoreReport:
    """Learn from converted (won) and disqualified (lost) leads, score the rest."""
    now = _utc(now)
    if stats is None:
        stats = activity_stats(ctx)[1]
    train_rows, labels, open_leads = [], [], []
    for lead in crm_tools.iter_all(ctx, "lead"):
        status = str(getattr(lead.status, "value", lead.status))
        last = stats.last.get(lead.id)
        as_of = lead.converted_at or now
        days = (as_of - last).total_seconds() / 86400 if last is not None else None
        details = "e-mail and phone" if lead.email and lead.phone else "e-mail or phone" if (
            lead.email or lead.phone) else "none"
        row = (lead.source or None, details, "known" if lead.company_name else "unknown",
               count_band(stats.count.get(lead.id, 0)), recency_band(max(days, 0.0) if days is not None else None))
        if lead.converted_at is not None:
            train_rows.append(row)
            labels.append(True)
        elif status == "disqualified":
            train_rows.append(row)
            labels.append(False)
        else:
            open_leads.append((lead, row))
    return _report("lead", LEAD_FEATURES, train_rows, labels, open_leads)


def _report(entity: str, features: Sequence[str], rows: list, labels: list, open_records: list) -> ScoreReport:
    model = NaiveBayes(features)
    try:
        model.fit(rows, labels)
    except NotEnoughHistory as exc:
        return ScoreReport(entity, [], labels.count(True), labels.count(False), message=str(exc).replace(
            "deals", "deals" if entity == "deal" else "leads"))
    # rows are few distinct combinations of bands: score each combination once
    seen: dict[tuple, tuple[float, list[Factor]]] = {}
    scores = []
    for r, row in open_records:
        hit = seen.get(row)
        if hit is None:
            hit = seen[row] = (model.probability(row), model.factors(row))
        scores.append(Score(entity, r.id, r.display_name, hit[0], hit[1]))
    scores.sort(key=lambda s: (-s.probability, s.name))
    return ScoreReport(entity, scores, model.won, model.lost)
