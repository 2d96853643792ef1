"""``ctx.<records>.aggregate``: permission-checked, SQL-side grouped measures over a fixed vocabulary."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from crm_desktop.plugin_api import PermissionDenied, ValidationError

REPO = Path(__file__).resolve().parents[2]


def _plugin(folder: Path, permissions: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "name": "agg-probe", "version": "1.0.0", "displayName": "Aggregate probe", "description": "tests",
        "author": "tests", "main": "probe.py", "permissions": permissions,
    }))
    (folder / "probe.py").write_text("")
    return folder


@pytest.fixture
def deals_ctx(crm_plugin, tmp_path):
    host, ctx = crm_plugin(_plugin(tmp_path / "agg-probe", ["deals:read", "leads:read"]))
    assert ctx is not None, host.records["agg-probe"].error
    services = host.core.services
    stages = {s.name: s.id for s in services.pipelines.stages(services.pipelines.default().id)}
    for title, stage, amount, currency, owner in (("a", "Proposal", 100, "EUR", "u1"), ("b", "Proposal", 300, "EUR", "u2"),
                                                  ("c", "Negotiation", 1000, "USD", "u1"),
                                                  ("d", "Won", 50, "EUR", "u1")):
        services.deals.create(title=title, stage_id=stages[stage], amount=amount, currency=currency, owner_id=owner,
                              expected_close="2025-03-15")
    gone = services.deals.create(title="gone", stage_id=stages["Proposal"], amount=7777)
    services.deals.delete(gone.id)
    return host, ctx


def test_aggregate_groups_and_measures_in_sql(deals_ctx):
    host, ctx = deals_ctx
    rows = ctx.deals.aggregate(group_by=["stage_name", "currency"],
                               measures={"n": "count", "total": "sum:amount_cents", "avg": "avg:amount_cents",
                                         "forecast": "sum:weighted_amount_cents"},
                               status="open")
    assert rows == [
        {"stage_name": "Negotiation", "currency": "USD", "n": 1, "total": 100000, "avg": 100000.0, "forecast": 75000.0},
        {"stage_name": "Proposal", "currency": "EUR", "n": 2, "total": 40000, "avg": 20000.0, "forecast": 20000.0},
    ]  # the deleted deal is not counted
    assert ctx.deals.aggregate(measures={"n": "count"}) == [{"n": 4}]
    assert ctx.deals.aggregate(group_by="owner_id", measures={"n": "count"}, status=["won", "open"],
                               owner_id__ne="u2") == [{"owner_id": "u1", "n": 3}]
    assert ctx.deals.aggregate(group_by="expected_close:month", measures={"n": "count"},
                               expected_close__gte=date(2025, 3, 1), expected_close__lt="2025-04-01") == [
        {"expected_close:month": "2025-03", "n": 4}]
    assert ctx.deals.aggregate(measures={"n": "count"}, created_at__gte=datetime(2999, 1, 1, tzinfo=timezone.utc)) \
        == [{"n": 0}]


def test_aggregate_without_read_permission_is_refused_and_audited(crm_plugin, tmp_path):
    host, ctx = crm_plugin(_plugin(tmp_path / "agg-probe", ["leads:read"]))
    with pytest.raises(PermissionDenied, match=r"plugin 'agg-probe' may not use 'deals:read' \(deals.aggregate\)"):
        ctx.deals.aggregate(measures={"n": "count"})
    denied = host.core.services.audit.recent(action="permission.denied", actor_name="agg-probe")
    assert denied and denied[0].changes["permission"] == "deals:read"
    assert ctx.leads.aggregate(measures={"n": "count"}) == [{"n": 0}]


@pytest.mark.parametrize("kwargs, message", [
    ({"group_by": ["title"], "measures": {"n": "count"}},
     "deal aggregate.group_by: 'title' is invalid: is not an aggregate field of deal (fields: owner_id,"),
    ({"group_by": ["status:month"], "measures": {"n": "count"}}, "a bucket (:month) needs a date field"),
    ({"group_by": ["created_at:fortnight"], "measures": {"n": "count"}}, "has an unknown bucket"),
    ({"measures": {"n": "sum:status"}}, "sum needs a number field (number fields: stage_position,"),
    ({"measures": {"n": "median:amount_cents"}}, "must start with one of count, sum, avg, min, max"),
    ({"measures": {"n; DROP TABLE deals": "count"}}, "names must be identifiers"),
    ({"measures": {}}, "must be a non-empty mapping"),
    ({"measures": {"n": "count"}, "closed_at__gte": "last tuesday"}, "must be a date (YYYY-MM-DD)"),
    ({"measures": {"n": "count"}, "closed_at__gte": datetime(2025, 1, 1)}, "must be an aware datetime"),
    ({"measures": {"n": "count"}, "amount_cents__like": 5}, "has an unknown comparison 'like'"),
    ({"measures": {"n": "count"}, "amount_cents": "lots"}, "must be a number"),
    ({"measures": {"n": "count"}, "nope": 1}, "deal aggregate.filter: 'nope' is invalid"),
])
def test_bad_aggregate_arguments_name_what_was_wrong(deals_ctx, kwargs, message):
    host, ctx = deals_ctx
    with pytest.raises(ValidationError) as caught:
        ctx.deals.aggregate(**kwargs)
    assert message in str(caught.value)
    assert ctx.deals.aggregate(measures={"n": "count"}) == [{"n": 4}]  # nothing changed


def test_users_cannot_be_aggregated(crm_plugin, tmp_path):
    host, ctx = crm_plugin(_plugin(tmp_path / "agg-probe", ["users:read"]))
    with pytest.raises(ValidationError, match="cannot be aggregated"):
        ctx.users.aggregate(measures={"n": "count"})


def test_the_plugin_guide_lists_exactly_the_aggregate_vocabulary():
    from crm_desktop.services.aggregates import VOCABULARY

    guide = (REPO / "docs" / "plugin-guide.md").read_text()
    section = guide.split("### Aggregate vocabulary", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, dict[str, str]] = {}
    for entity, name, kind in re.findall(r"^\| `(\w+)` \| `(\w+)` \| (\w+) \|", section, re.M):
        documented.setdefault(entity, {})[name] = kind
    assert documented == {entity: {name: f.kind for name, f in fields.items()} for entity, fields in VOCABULARY.items()}


# -- the SQL paths behind the reporting charts (migration 0009, services/aggregates.py) -----------------


def _sql(entity, group_by, measures, filters):
    from sqlalchemy.dialects import sqlite

    from crm_desktop.services import aggregates

    return str(aggregates.build(entity, group_by, measures, filters).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


@pytest.fixture
def mixed_ctx(crm_plugin, tmp_path):
    """Two pipelines, two currencies, amounts in odd cents, open / won / lost deals, one deleted."""
    host, ctx = crm_plugin(_plugin(tmp_path / "agg-probe", ["deals:read", "activities:read"]))
    assert ctx is not None, host.records["agg-probe"].error
    services = host.core.services
    stages = {s.name: s.id for s in services.pipelines.stages(services.pipelines.default().id)}
    renewals = services.pipelines.create(name="Renewals", position=1)
    stages["Offer"] = services.stages.create(pipeline_id=renewals.id, name="Offer", position=0, probability=30).id
    made = []
    for i, (stage, amount, currency, close) in enumerate((
            ("Prospecting", "1234.57", "EUR", "2025-03-15"), ("Prospecting", "99.99", "EUR", "2025-04-02"),
            ("Proposal", "310.01", "EUR", "2025-03-31"), ("Proposal", "0.03", "USD", "2025-03-01"),
            ("Negotiation", "777.77", "USD", "2025-05-20"), ("Offer", "12.34", "EUR", "2025-03-10"),
            ("Offer", "5000", "EUR", None), ("Won", "4000.01", "EUR", "2025-02-01"),
            ("Won", "1.11", "USD", "2025-02-01"), ("Lost", "250.5", "EUR", "2025-02-20"))):
        where = {"pipeline_id": renewals.id} if stage == "Offer" else {}
        made.append(services.deals.create(title=f"d{i}", stage_id=stages[stage], amount=amount, currency=currency,
                                          owner_id="u1" if i % 2 else "u2", expected_close=close, **where))
    services.deals.delete(services.deals.create(title="gone", stage_id=stages["Offer"], pipeline_id=renewals.id,
                                                amount="9.99").id)
    return host, ctx, stages, made


def _close(pairs):  # measures compared: whole numbers exactly, the weighted sums to the last cent
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()} for row in pairs]


@pytest.mark.parametrize("group_by, measures, filters", [
    (["pipeline_name", "stage_position", "stage_name", "currency"], {"deals": "count", "value": "sum:amount_cents"},
     {"status": "open"}),
    (["expected_close:month", "currency"],
     {"deals": "count", "weighted": "sum:weighted_amount_cents", "value": "sum:amount_cents"},
     {"status": "open", "expected_close__lt": "2025-05-01"}),
    (["stage_name"], {"n": "count:expected_close", "low": "min:amount_cents", "high": "max:amount_cents",
                      "w": "sum:weighted_amount_cents"}, {"owner_id": "u1"}),
    ([], {"n": "count", "w": "sum:weighted_amount_cents", "total": "sum:amount_cents"}, {"status": "open"}),
    ([], {"n": "count", "w": "sum:weighted_amount_cents"}, {"status": "open", "currency": "CHF"}),  # nothing matches
    (["pipeline_name", "status"], {"n": "count"}, {}),
])
def test_stage_and_pipeline_aggregates_sum_per_stage_first_with_the_same_numbers(mixed_ctx, group_by, measures,
                                                                                 filters):
    """A deal aggregate that joins stages or pipelines groups the deals first (by stage, pipeline and
    its own fields) and joins the few groups: the same rows and numbers as the join per deal, which
    a filter on a stage field still takes (the reference here)."""
    host, ctx, stages, made = mixed_ctx
    assert "per_deal" in _sql("deal", group_by, measures, filters)
    reference_filters = {**filters, "stage_probability__gte": 0}  # every stage: the per-row join
    assert "per_deal" not in _sql("deal", group_by, measures, reference_filters)
    fast = ctx.deals.aggregate(group_by=group_by, measures=measures, **filters)
    reference = ctx.deals.aggregate(group_by=group_by, measures=measures, **reference_filters)
    assert fast and _close(fast) == _close(reference)
    assert [list(r) for r in fast] == [list(r) for r in reference]  # same keys, same order
    for fast_row, reference_row in zip(fast, reference):
        for key, value in fast_row.items():
            assert type(value) is type(reference_row[key]), key  # ints stay ints, dates stay dates


def test_the_pre_aggregated_pipeline_matches_numbers_worked_out_by_hand(mixed_ctx):
    host, ctx, stages, made = mixed_ctx
    rows = ctx.deals.aggregate(group_by=["pipeline_name", "stage_name", "currency"],
                               measures={"n": "count", "value": "sum:amount_cents", "w": "sum:weighted_amount_cents"},
                               status="open")
    assert [(r["pipeline_name"], r["stage_name"], r["currency"], r["n"], r["value"]) for r in rows] == [
        ("Renewals", "Offer", "EUR", 2, 501234),  # the deleted Offer deal is not counted
        ("Sales", "Negotiation", "USD", 1, 77777),
        ("Sales", "Proposal", "EUR", 1, 31001),
        ("Sales", "Proposal", "USD", 1, 3),
        ("Sales", "Prospecting", "EUR", 2, 133456),
    ]
    weighted = {(r["stage_name"], r["currency"]): r["w"] for r in rows}
    assert weighted[("Prospecting", "EUR")] == pytest.approx(13345.6)  # (123457 + 9999) x 10 %
    assert weighted[("Offer", "EUR")] == pytest.approx(150370.2)  # (1234 + 500000) x 30 %
    assert weighted[("Negotiation", "USD")] == pytest.approx(58332.75)


def test_closed_at_filters_read_stage_changed_at_and_still_leave_open_deals_out(mixed_ctx):
    host, ctx, stages, made = mixed_ctx
    from sqlalchemy import text

    with host.core.services.db.write_engine.begin() as conn:  # every deal moved stage in March 2025
        conn.execute(text("UPDATE deals SET stage_changed_at = '2025-03-05 10:00:00.000000'"))
    window = {"closed_at__gte": date(2025, 3, 1), "closed_at__lt": date(2025, 4, 1)}
    sql = _sql("deal", ["status"], {"n": "count"}, window)
    where = sql.split("WHERE", 1)[1]
    assert "CASE" not in where and "deals.stage_changed_at >= '2025-03-01" in where  # an index can serve it
    assert ctx.deals.aggregate(group_by="status", measures={"n": "count"}, **window) == [
        {"status": "lost", "n": 1}, {"status": "won", "n": 2}]  # the 7 open deals moved too, but are not closed
    assert ctx.deals.aggregate(measures={"n": "count"}, closed_at="2025-03-05T10:00:00+00:00") == [{"n": 3}]
    assert ctx.deals.aggregate(measures={"n": "count"}, closed_at__isnull=True) == [{"n": 7}]
    assert ctx.deals.aggregate(measures={"n": "count"}, closed_at__ne=date(2025, 1, 1)) == [{"n": 10}]
    assert ctx.deals.aggregate(measures={"n": "count"}, closed_at__lt=date(2025, 3, 1)) == [{"n": 0}]


def test_a_bool_filter_is_the_condition_itself(mixed_ctx):
    host, ctx, stages, made = mixed_ctx
    services = host.core.services
    done = services.activities.create(kind="call", subject="done", owner_id="u1")
    services.activities.update(done.id, done_at=datetime(2025, 3, 3, 9, tzinfo=timezone.utc))
    services.activities.create(kind="task", subject="open", due_at=datetime(2025, 3, 9, 9, tzinfo=timezone.utc))
    where = _sql("activity", [], {"n": "count"}, {"is_done": True}).split("WHERE", 1)[1]
    assert "activities.done_at IS NOT NULL" in where and "= 1" not in where
    conn = sqlite3.connect(host.core.home.db_path)
    try:  # an index on done_at seeks to the done ones instead of reading the open ones too
        plan = " ".join(r[-1] for r in conn.execute(
            "EXPLAIN QUERY PLAN " + _sql("activity", ["owner_id"], {"n": "count"}, {"is_done": True})))
        assert "(done_at>?)" in plan, plan
    finally:
        conn.close()
    assert "activities.done_at IS NULL" in _sql("activity", [], {"n": "count"}, {"is_done": False})
    count = {"group_by": "kind", "measures": {"n": "count"}}
    assert ctx.activities.aggregate(**count, is_done=True) == [{"kind": "call", "n": 1}]
    assert ctx.activities.aggregate(**count, is_done=False) == [{"kind": "task", "n": 1}]
    assert ctx.activities.aggregate(group_by="is_done", measures={"n": "count"}) == [
        {"is_done": False, "n": 1}, {"is_done": True, "n": 1}]
