"""The plugin API verbs, used by a real plugin (tests/plugins/api-tour) against a real temporary database."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from crm_desktop.plugin_api import DealStatus, PermissionDenied, ValidationError

TOUR = Path(__file__).resolve().parents[1] / "plugins" / "api-tour"


def tour():
    return sys.modules["crm_plugins.api_tour.api_tour"]


@pytest.fixture
def loaded(crm_plugin, memory_keyring):
    host, ctx = crm_plugin(TOUR)
    assert host.records["api-tour"].state.value == "active", host.records["api-tour"].error
    return host, ctx


def test_lists_page_with_cursors_and_never_truncate(loaded):
    host, ctx = loaded
    tour().make_contacts(ctx, 1203)
    names, pages = tour().walk_pages(ctx, 250)
    assert pages == 5 and len(names) == 1203 and len(set(names)) == 1203
    assert names == sorted(names)
    count, all_names = tour().count_and_iterate(ctx)
    assert count == 1203 and sorted(all_names) == names
    page = ctx.contacts.list(limit=1000)
    assert len(page) == 1000 and page.has_more and page.next_cursor


def test_paging_walks_past_records_with_no_sort_value(loaded):
    """Activities sort by due date by default; notes have none. Paging must not stop at them."""
    host, ctx = loaded
    for i in range(9):
        ctx.activities.log("note", f"note {i}")
    for i in range(4):
        ctx.activities.schedule("task", f"task {i}", datetime(2030, 1, i + 1, tzinfo=timezone.utc))
    subjects = [a.subject for a in ctx.activities.iter_all(batch=2)]
    assert len(subjects) == 13 and len(set(subjects)) == 13
    descending = []
    cursor = None
    while True:
        page = ctx.activities.list(limit=3, cursor=cursor, descending=True)
        descending += [a.subject for a in page]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert sorted(descending) == sorted(subjects)


def test_bad_calls_say_what_was_wrong_in_one_line(loaded):
    host, ctx = loaded
    out = tour().bad_calls(ctx)
    assert "colour" in out["filter"] and "is not a filter of contacts" in out["filter"]
    assert "stage_id" in out["count filter"]
    assert "limit" in out["limit"] and "1 to 1000" in out["limit"]
    assert "cursor" in out["cursor"]
    assert "model" in out["agent"]
    assert "ctx.ui is only available in the desktop app" in out["ui"]
    assert all("\n" not in line for line in out.values())
    with pytest.raises(ValidationError, match="batch"):
        ctx.contacts.iter_all(batch=1001)  # raised at the call, not at the first next()
    with pytest.raises(ValidationError, match="colour"):
        ctx.contacts.iter_all(colour="red")
    page = ctx.contacts.list(limit=1, sort="name")
    ctx.contacts.create(first_name="A")
    ctx.contacts.create(first_name="B")
    cursor = ctx.contacts.list(limit=1, sort="name").next_cursor
    with pytest.raises(ValidationError, match="other filters or another sort"):
        ctx.contacts.list(limit=1, sort="name", cursor=cursor, text="x")
    assert page == []


def test_deals_move_through_the_pipeline_and_publish_stage_changes(loaded):
    host, ctx = loaded
    seen = []
    host.core.events.subscribe(lambda e: seen.append(e) if e.name == "deal.stage_changed" else None)
    stages, moved, won, lost = tour().sell(ctx, "Acme")
    assert [s.name for s in stages][:3] == ["Prospecting", "Qualified", "Proposal"]
    assert [s.probability for s in stages] == sorted(s.probability for s in stages if not s.is_lost) + [0]
    assert moved.stage_name == "Proposal" and moved.status is DealStatus.OPEN
    assert won.status is DealStatus.WON and won.stage_name == "Won"
    assert lost.status is DealStatus.LOST
    first = seen[0].payload
    assert first["id"] == moved.id and first["from_stage_id"] == stages[0].id
    assert first["to_stage_id"] == stages[2].id and first["status"] == "open"
    assert seen[1].payload["status"] == "won"
    notes = ctx.activities.list(deal_id=lost.id)
    assert [(a.kind.value, a.subject) for a in notes] == [("note", "Lost: went with a competitor")]


def test_activities_log_schedule_and_complete(loaded):
    host, ctx = loaded
    contact = ctx.contacts.create(first_name="Ann", last_name="Lee")
    call, meeting, open_before, done = tour().follow_up(ctx, contact.id)
    assert call.is_done and call.body == "Interested"
    assert not meeting.is_done and meeting.due_at is not None and open_before == 1
    assert done.is_done and done.body == "Outcome: Wants a quote"
    assert ctx.activities.count(contact_id=contact.id, open_only=True) == 0


def test_leads_convert_into_contact_company_and_deal(loaded):
    host, ctx = loaded
    conversion = tour().convert(ctx, "Big order", "Bob Stone", "Stone Ltd")
    assert conversion.contact.display_name == "Bob Stone"
    assert conversion.company.name == "Stone Ltd" and conversion.company_created
    assert conversion.deal.title == "Stone Ltd first order" and conversion.deal.amount_cents == 50000
    assert conversion.lead.status.value == "converted" and conversion.lead.converted_deal_id == conversion.deal.id
    with pytest.raises(ValidationError, match="converted already"):
        ctx.leads.convert(conversion.lead.id)


def test_tags_are_added_read_and_removed(loaded):
    host, ctx = loaded
    contact = ctx.contacts.create(first_name="Cy")
    after_add, after_remove, every = tour().tag(ctx, contact.id)
    assert after_add == ["Newsletter", "VIP"] and after_remove == ["VIP"]
    assert "VIP" in every and ctx.contacts.get(contact.id).tags == ("VIP",)
    with pytest.raises(ValidationError, match="entity"):
        ctx.tags.add("pipeline", contact.id, "x")


def test_users_current_and_search(loaded):
    host, ctx = loaded
    host.core.services.users.create(username="mia", display_name="Mia Wong", email="mia@example.com")
    host.core.services.users.create(username="tom", display_name="Tom Berg")
    me, found = tour().who(ctx, "WONG")
    assert me.username == "local" and me.role.value == "admin"
    assert [u.username for u in found] == ["mia"]
    assert [u.username for u in ctx.users.search("example.com")] == ["mia"]
    assert ctx.users.search("%") == []


def test_an_agent_writes_on_behalf_of_the_user(loaded):
    host, ctx = loaded
    contact = tour().assistant_writes(ctx, "claude-sonnet-4", "Ava")
    history = host.core.services.audit.for_record("contact", contact.id)
    assert [(str(e.actor_kind), e.actor_name, e.on_behalf_of) for e in history] == \
        [("agent", "claude-sonnet-4", "local")]
    plain = ctx.contacts.create(first_name="Not an agent")
    assert [(e.actor_kind, e.actor_name, e.on_behalf_of)
            for e in host.core.services.audit.for_record("contact", plain.id)] == [("plugin", "api-tour", None)]


def test_an_agent_inside_a_transaction_is_audited_as_the_agent(loaded):
    host, ctx = loaded
    with ctx.transaction(), ctx.acting_as_agent("gpt-x"):
        contact = ctx.contacts.create(first_name="Tx")
    assert [(e.actor_name, e.on_behalf_of) for e in host.core.services.audit.for_record("contact", contact.id)] == \
        [("gpt-x", "local")]


def test_every_verb_checks_its_permission_and_refusals_are_audited(crm_plugin, memory_keyring, tmp_path):
    import json
    import shutil

    folder = tmp_path / "api-tour"
    shutil.copytree(TOUR, folder)
    manifest = json.loads((folder / "plugin.json").read_text())
    manifest["permissions"] = ["contacts:read"]
    (folder / "plugin.json").write_text(json.dumps(manifest))
    host, ctx = crm_plugin(folder)
    calls = {
        "deals:write": lambda: ctx.deals.move_to_stage("d", "s"),
        "activities:write": lambda: ctx.activities.log("call", "x"),
        "leads:write": lambda: ctx.leads.convert("l"),
        "users:read": lambda: ctx.users.current(),
        "pipelines:read": lambda: ctx.pipelines.list(),
        "tags:read": lambda: ctx.tags.list(),
        "tags:write": lambda: ctx.tags.add("contact", "c", "x"),
        "companies:read": lambda: ctx.companies.count(),
    }
    for permission, call in calls.items():
        with pytest.raises(PermissionDenied, match=permission):
            call()
    denied = [e.changes["permission"] for e in host.core.services.audit.recent(action="permission.denied")]
    assert sorted(denied) == sorted(calls)
    assert ctx.contacts.count() == 0  # what it may do still works


def test_on_dispose_runs_in_reverse_each_guarded_on_disable_reload_and_quit(loaded):
    host, ctx = loaded
    trail = ctx.data_dir / "disposed.txt"
    host.reload("api-tour")
    assert trail.read_text().splitlines() == ["last registered", "first registered"]
    host.disable("api-tour", persist=False)
    assert trail.read_text().splitlines() == ["last registered", "first registered"] * 2
    host.enable("api-tour")
    host.stop()
    assert trail.read_text().splitlines() == ["last registered", "first registered"] * 3
