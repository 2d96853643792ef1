"""Offline deal scoring of the AI assistant: 200k deals (and 400k activities) in under 5 s.

Runs the plugin's own ``score_deals`` (activity statistics, feature extraction,
naive Bayes training on the won/lost deals, scoring every open deal with its
factors, sorting) over records handed out page by page by a stand-in for
``ctx.<records>.iter_all``, so the figure is the scorer's own cost; reading the
pages from SQLite is the facade's and is measured by the paging benchmarks.

    python bench/bench_agent_scoring.py [--deals N] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "plugins" / "ai-assistant"
TARGET_S = 5.0


def load_scoring():
    """The plugin's scoring module, imported as the host does (the folder as a package)."""
    package = types.ModuleType("ai_assistant_bench")
    package.__path__ = [str(PLUGIN)]
    sys.modules["ai_assistant_bench"] = package
    return importlib.import_module("ai_assistant_bench.scoring")


class Pages:
    """``iter_all`` over a list, page by page, as the facade walks them."""

    def __init__(self, rows):
        self.rows = rows

    def iter_all(self, batch=500, **filters):
        for start in range(0, len(self.rows), batch):
            yield from self.rows[start:start + batch]


STAGES = [(f"s{i}", name) for i, name in enumerate(("Prospecting", "Qualified", "Proposal", "Negotiation"))]


class Pipelines:
    """``ctx.pipelines``: one pipeline with the benchmark's stages (the scorer names stages from it)."""

    def list(self):
        return [types.SimpleNamespace(id="p", name="Sales")]

    def stages(self, pipeline_id):
        return [types.SimpleNamespace(id=sid, name=name) for sid, name in STAGES]


class FakeContext:
    def __init__(self, deals, activities, leads):
        import logging

        self.deals, self.activities, self.leads = Pages(deals), Pages(activities), Pages(leads)
        self.pipelines = Pipelines()
        self.log = logging.getLogger("bench")


def make_data(n: int, seed: int = 7):
    from crm_desktop.plugin_api import Activity, Deal, Lead

    rnd = random.Random(seed)
    now = datetime.now(timezone.utc)
    stages = STAGES
    base = dict(created_at=now, updated_at=now, version=0, deleted_at=None, owner_id=None, team_id=None)
    deals, activities, leads, last_stage = [], [], [], {}
    for i in range(n):
        status = rnd.choices(("open", "won", "lost"), (4, 3, 3))[0]
        stage_id, stage_name = stages[rnd.randrange(4)]
        closed_at = now - timedelta(days=rnd.randrange(1, 700))
        deal = Deal(id=f"d{i}", title=f"Deal {i}", pipeline_id="p", stage_id=stage_id if status == "open" else status,
                    amount_cents=rnd.randrange(10_000, 50_000_000), status=status, stage_name=stage_name
                    if status == "open" else status.title(), stage_changed_at=None if status == "open" else closed_at,
                    **base)
        deals.append(deal)
        if status != "open":
            last_stage[deal.id] = stage_id
        for _ in range(rnd.choice((0, 1, 2, 2, 3))):
            activities.append(Activity(id=f"a{len(activities)}", kind="call", subject="c", deal_id=deal.id,
                                       done_at=now - timedelta(days=rnd.randrange(0, 400)), **base))
        if i % 4 == 0:
            leads.append(Lead(id=f"l{i}", title="lead", source=rnd.choice(("web", "referral", "fair", "cold")),
                              converted_deal_id=deal.id, **base))
    return deals, activities, leads, last_stage


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20k deals, target scaled down")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else args.deals
    target = TARGET_S * n / 200_000
    scoring = load_scoring()
    deals, activities, leads, last_stage = make_data(n)
    ctx = FakeContext(deals, activities, leads)
    started = time.perf_counter()
    report = scoring.score_deals(ctx, last_stage=last_stage)
    elapsed = time.perf_counter() - started
    ok = elapsed < target and report.message is None and len(report.scores) > 0
    print(f"agent scoring: {n} deals, {len(activities)} activities, {len(leads)} leads: trained on "
          f"{report.won} won / {report.lost} lost, scored {len(report.scores)} open with factors")
    print(f"  score_deals: {elapsed:.2f} s (target < {target:.1f} s) {'OK' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
