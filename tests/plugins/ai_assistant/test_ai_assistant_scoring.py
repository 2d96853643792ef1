"""Offline scoring and next-best actions, on fixtures whose answer is worked out by hand."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone

import pytest
from conftest import PLUGIN, STAGE


def scoring():
    return sys.modules["crm_plugins.ai_assistant.scoring"]


@pytest.fixture
def plugin(crm_plugin):
    host, ctx = crm_plugin(PLUGIN)
    assert host.records["ai-assistant"].state.value == "active", host.records["ai-assistant"].error
    return host, ctx, host.core.services


def test_naive_bayes_known_answer(plugin):
    """4 won (3 referral, 1 cold), 4 lost (1 referral, 3 cold): with add-one smoothing
    P(referral|won) = 4/6, P(referral|lost) = 2/6, so a referral has odds 2 -> 2/3."""
    nb = scoring().NaiveBayes(["source"]).fit(
        [("referral",)] * 3 + [("cold",)] + [("referral",)] + [("cold",)] * 3, [True] * 4 + [False] * 4)
    assert nb.probability(("referral",)) == pytest.approx(2 / 3)
    assert nb.probability(("cold",)) == pytest.approx(1 / 3)
    assert nb.probability(("fair",)) == pytest.approx(0.5)  # never seen: no pull either way
    assert nb.probability((None,)) == pytest.approx(0.5)
    [factor] = nb.factors(("referral",))
    assert factor.weight == pytest.approx(math.log(2)) and str(factor) == "+ source referral (2.00x odds)"
    # an uneven prior: 3 won, 1 lost, no features -> 3/4
    assert scoring().NaiveBayes(["x"]).fit([(None,)] * 4, [True, True, True, False]).probability((None,)) == 0.75
    with pytest.raises(scoring().NotEnoughHistory, match="no lost deals to learn from yet"):
        scoring().NaiveBayes(["x"]).fit([("a",)], [True])


def test_bands(plugin):
    s = scoring()
    assert [s.amount_band(c) for c in (0, 99_999, 100_000, 2_000_000, 10_000_000)] == \
        ["< 1k", "< 1k", "1k-5k", "20k-100k", ">= 100k"]
    assert [s.count_band(n) for n in (0, 1, 2, 3, 6)] == ["none", "1-2", "1-2", "3-5", "6+"]
    assert [s.recency_band(d) for d in (None, 0, 7, 45, 400)] == ["never", "< 7 days", "7-30 days", "30-90 days",
                                                                    "90+ days"]


def test_deal_scores_learn_the_stage_a_deal_was_won_or_lost_from(plugin):
    """Deals of one amount band and no activities: only the stage they left tells won from lost.
    Won: 3 from Negotiation, 1 from Proposal; lost: 1 from Negotiation, 3 from Proposal.
    So an open deal in Negotiation scores 2/3, one in Proposal 1/3, one in Qualified (never seen) 1/2."""
    host, ctx, services = plugin
    history = [("Negotiation", "Won")] * 3 + [("Proposal", "Won")] + [("Negotiation", "Lost")] + \
        [("Proposal", "Lost")] * 3
    for i, (stage, end) in enumerate(history):
        deal = services.deals.create(title=f"old {i}", stage_id=STAGE[stage], amount_cents=500_000)
        services.deals.move_to_stage(deal.id, STAGE[end])
    hot = services.deals.create(title="Hot", stage_id=STAGE["Negotiation"], amount_cents=600_000)
    cold = services.deals.create(title="Cold", stage_id=STAGE["Proposal"], amount_cents=700_000)
    new = services.deals.create(title="New", stage_id=STAGE["Qualified"], amount_cents=800_000)
    report = scoring().score_deals(ctx)
    assert (report.won, report.lost, report.message) == (4, 4, None)
    got = {s.name: s for s in report.scores}
    assert [s.name for s in report.scores] == ["Hot", "New", "Cold"]
    assert got["Hot"].probability == pytest.approx(2 / 3)
    assert got["Cold"].probability == pytest.approx(1 / 3)
    assert got["New"].probability == pytest.approx(1 / 2)
    assert [str(f) for f in got["Hot"].factors] == ["+ stage Negotiation (2.00x odds)"]
    assert got["Hot"].id == hot.id and got["Cold"].id == cold.id and got["New"].id == new.id


def test_activity_counts_pull_scores(plugin):
    """Every won deal had 3 activities; every lost one had none."""
    host, ctx, services = plugin
    for i in range(4):
        won = i % 2 == 0
        deal = services.deals.create(title=f"d{i}", stage_id=STAGE["Proposal"], amount_cents=100)
        if won:
            for n in range(3):
                services.activities.log("call", f"call {n}", deal_id=deal.id)
        services.deals.move_to_stage(deal.id, STAGE["Won" if won else "Lost"])
    busy = services.deals.create(title="Busy", stage_id=STAGE["Proposal"], amount_cents=100)
    for n in range(4):
        services.activities.log("visit", f"visit {n}", deal_id=busy.id)
    idle = services.deals.create(title="Idle", stage_id=STAGE["Proposal"], amount_cents=100)
    got = {s.name: s for s in scoring().score_deals(ctx).scores}
    assert got["Busy"].probability > 0.8 > 0.2 > got["Idle"].probability
    assert "activities 3-5" in " ".join(str(f) for f in got["Busy"].factors)
    assert got["Idle"].factors[0].weight < 0


def test_too_little_history_says_so(plugin):
    host, ctx, services = plugin
    services.deals.create(title="Only open", stage_id=STAGE["Proposal"])
    report = scoring().score_deals(ctx)
    assert report.scores == [] and report.message.startswith("no won deals to learn from yet (0 won, 0 lost)")


def test_next_actions(plugin):
    host, ctx, services = plugin
    now = datetime.now(timezone.utc)
    acme = services.companies.create(name="Acme", city="Lyon")
    ann = services.contacts.create(first_name="Ann", last_name="Lee", company_id=acme.id)
    services.contacts.create(first_name="Bob", last_name="Stone", city="Lyon")
    services.contacts.create(first_name="Cy", last_name="Far", city="Paris")
    services.activities.schedule("task", "Send quote", now - timedelta(days=3), contact_id=ann.id)
    services.activities.schedule("visit", "Visit Acme", now.replace(hour=23, minute=0) if now.hour < 23 else now,
                                 contact_id=ann.id)
    deal = services.deals.create(title="Sleepy deal", stage_id=STAGE["Proposal"])
    actions = sys.modules["crm_plugins.ai_assistant.actions"]
    texts = [a.text for a in actions.next_actions(ctx, now + timedelta(days=20, hours=1))]
    assert texts[0] == "Overdue 23 days: Send quote" and texts[1].endswith("days: Visit Acme")
    assert "Deal 'Sleepy deal' has been quiet for 20 days: plan a next step" in texts
    # today, the visit to Acme in Lyon suggests Bob in Lyon (never visited), not Cy in Paris nor Ann herself
    near = [a for a in actions.next_actions(ctx, now) if a.kind == "nearby-visit"]
    assert [a.text for a in near] == ["In Lyon today (Visit Acme): drop in on Bob Stone (never visited)"]
    assert [a.record_id for a in actions.next_actions(ctx, now) if a.kind == "overdue"] == [ann.id]
    assert deal.id not in [a.record_id for a in actions.next_actions(ctx, now)]  # not quiet yet


def test_scores_and_next_actions_read_every_record_not_the_first_page(plugin):
    """More open deals than the largest page (1000): every one is scored and every quiet one is found."""
    host, ctx, services = plugin
    from crm_desktop.plugin_api import MAX_LIMIT

    history = [("Negotiation", "Won")] * 2 + [("Proposal", "Lost")] * 2
    for i, (stage, end) in enumerate(history):
        deal = services.deals.create(title=f"old {i}", stage_id=STAGE[stage], amount_cents=500_000)
        services.deals.move_to_stage(deal.id, STAGE[end])
    n = MAX_LIMIT + 5
    with services.unit_of_work():
        for i in range(n):
            services.deals.create(title=f"open {i:04d}", stage_id=STAGE["Qualified"], amount_cents=100_000)
    report = scoring().score_deals(ctx)
    assert len(report.scores) == n
    later = datetime.now(timezone.utc) + timedelta(days=30)  # every open deal has gone quiet by then
    actions = sys.modules["crm_plugins.ai_assistant.actions"].next_actions(ctx, later, limit=n + 10)
    assert len([x for x in actions if x.kind == "quiet-deal"]) == n
