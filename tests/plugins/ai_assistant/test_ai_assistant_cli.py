"""``crm-desktop agent ask`` and ``crm-desktop agent score``, through the plugin CLI hook."""

from __future__ import annotations

import json

from ai_fake_provider import Turn
from conftest import STAGE

from crm_desktop.cli import main
from crm_desktop.core import Core


def run(home, *argv) -> int:
    return main(["--home", str(home.root), *argv])


def seed(home):
    core = Core.open(home)
    try:
        s = core.services
        ann = s.contacts.create(first_name="Ann", last_name="Lee")
        deal = s.deals.create(title="Acme renewal", stage_id=STAGE["Proposal"], amount_cents=1_200_000,
                              contact_id=ann.id)
        s.deals.create(title="Other", stage_id=STAGE["Negotiation"])
        return ann.id, deal.id
    finally:
        core.close()


def deal_state(home, deal_id):
    core = Core.open(home)
    try:
        d = core.services.deals.get(deal_id)
        return d.stage_name, core.services.activities.count()
    finally:
        core.close()


def configure(home, provider, capsys):
    assert run(home, "plugin", "config", "ai-assistant", f"baseUrl={provider.base_url}", "model=fake-model") == 0
    capsys.readouterr()


def turns(ann, deal):
    return [Turn(calls=[("update_deal", {"deal_id": deal, "stage": "Negotiation"}),
                        ("log_activity", {"kind": "call", "subject": "Call with Ann", "contact_id": ann})]),
            Turn(text="I proposed moving the renewal to Negotiation and logging the call.")]


def test_ask_without_approve_writes_nothing(home, provider, capsys):
    ann, deal = seed(home)
    configure(home, provider, capsys)
    provider.turns += turns(ann, deal)
    assert run(home, "agent", "ask", "move the renewal on and log my call with Ann") == 0
    out = capsys.readouterr().out
    assert "I proposed moving the renewal to Negotiation and logging the call." in out
    assert "2 proposed: (not applied; run again with --approve)" in out
    assert "      Stage: Proposal -> Negotiation" in out
    assert deal_state(home, deal) == ("Proposal", 0)


def test_ask_json_approve_applies_and_reports(home, provider, capsys):
    ann, deal = seed(home)
    configure(home, provider, capsys)
    provider.turns += turns(ann, deal)
    assert run(home, "agent", "ask", "move the renewal on and log my call", "--json", "--approve") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "done" and data["reply"].startswith("I proposed moving")
    assert [p["title"] for p in data["proposals"]] == ["Update deal: Acme renewal", "Log call: Call with Ann"]
    assert [(p["status"], p["actor"]) for p in data["applied"]] == [("applied", "agent:fake-model")] * 2
    assert deal_state(home, deal) == ("Negotiation", 1)


def test_approve_refuses_more_writes_than_the_cap(home, provider, capsys):
    ann, deal = seed(home)
    configure(home, provider, capsys)
    assert run(home, "plugin", "config", "ai-assistant", "maxAutoApply=1") == 0
    provider.turns += turns(ann, deal)
    assert run(home, "agent", "ask", "do it all", "--approve") == 1
    assert "2 proposals is more than maxAutoApply (1); none applied" in capsys.readouterr().out
    assert deal_state(home, deal) == ("Proposal", 0)


def test_ask_errors_are_one_line(home, provider, capsys):
    seed(home)
    assert run(home, "agent", "ask", "hello") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: No model provider is set up: set baseUrl and model with `crm-desktop plugin config "
                   "ai-assistant baseUrl=http://127.0.0.1:11434/v1 model=NAME`."]
    assert run(home, "plugin", "config", "ai-assistant", "baseUrl=http://127.0.0.1:9/v1", "model=m") == 0
    capsys.readouterr()
    assert run(home, "agent", "ask", "hello", "--json") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"].startswith("The model provider at http://127.0.0.1:9/v1 is unreachable")
    assert captured.err.strip().count("\n") == 0


def test_score_prints_scores_with_factors(home, capsys):
    core = Core.open(home)
    try:
        s = core.services
        for i, (start, end) in enumerate([("Negotiation", "Won")] * 2 + [("Proposal", "Lost")] * 2):
            d = s.deals.create(title=f"old {i}", stage_id=STAGE[start])
            s.deals.update(d.id, stage_id=STAGE[end])
    finally:
        core.close()
    # the plugin learns stage moves from events while it runs; these happened before it ever ran,
    # so closed deals have no stage and the scores rest on the other features
    core = Core.open(home)
    core.services.deals.create(title="Open one", stage_id=STAGE["Negotiation"])
    core.close()
    assert run(home, "agent", "score", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["deals"]["trained_on"] == {"won": 2, "lost": 2}
    assert [s["name"] for s in data["deals"]["scores"]] == ["Open one"]
    assert data["leads"]["message"].startswith("no won leads to learn from yet")
    assert run(home, "agent", "score") == 0
    out = capsys.readouterr().out
    assert "Deals: learnt from 2 won and 2 lost" in out and "Open one" in out
