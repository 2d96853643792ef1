"""``ctx.<records>.aggregate``: permission-checked, SQL-side grouped measures over a fixed vocabulary."""

from __future__ import annotations

import json
import re
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
