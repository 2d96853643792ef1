"""Create, read, update, delete: validation messages, tombstones, audit and events."""

from __future__ import annotations

import pytest

from crm_desktop.domain.actor import Actor
from crm_desktop.errors import NotFound, ValidationError
from crm_desktop.services import ListQuery, Sort


def test_contact_round_trip_with_company_and_tags(services):
    acme = services.companies.create(name="Acme GmbH", city="Berlin")
    maria = services.contacts.create(first_name="Maria", last_name="Müller", email="maria@acme.de",
                                     company_id=acme.id, tags=["VIP", "berlin"])
    again = services.contacts.get(maria.id)
    assert again.display_name == "Maria Müller"
    assert again.company_name == "Acme GmbH"
    assert again.tags == ("berlin", "VIP")
    assert again.version == 0 and again.deleted_at is None
    assert len(again.id) == 36 and again.id[14] == "7"  # UUIDv7 made locally


@pytest.mark.parametrize("fields, field, rule", [
    ({"first_name": "A", "email": "not-an-address"}, "email", "e-mail address"),
    ({"email": "a@b.de"}, "last_name", "first or last name is required"),
    ({"first_name": "A", "company_id": "nope"}, "company_id", "existing company"),
    ({"first_name": "A", "phone": "call me"}, "phone", "phone number"),
    ({"first_name": "A", "shoe_size": 44}, "shoe_size", "not a field of contact"),
    ({"first_name": "A", "version": 3}, "version", "set by the system"),
])
def test_contact_validation_names_field_and_rule(services, fields, field, rule):
    with pytest.raises(ValidationError) as info:
        services.contacts.create(**fields)
    assert info.value.field == field
    assert rule in str(info.value)
    assert services.contacts.count() == 0  # nothing written


def test_deal_amount_must_not_be_negative(services):
    with pytest.raises(ValidationError, match="amount.*must be 0 or more"):
        services.deals.create(title="Bad", amount=-5)
    deal = services.deals.create(title="Fleet", amount="12.500,50")
    assert deal.amount_cents == 1_250_050


def test_stage_must_belong_to_the_deals_pipeline(services):
    other = services.pipelines.create(name="Renewals")
    foreign_stage = services.stages.create(pipeline_id=other.id, name="Due")
    deal = services.deals.create(title="Fleet")
    with pytest.raises(ValidationError, match="does not belong to the deal's pipeline 'Sales'"):
        services.deals.update(deal.id, stage_id=foreign_stage.id)
    assert services.deals.get(deal.id).stage_id == deal.stage_id


def test_moving_a_deal_to_won_sets_status_and_publishes_event(services):
    events = []
    services.events.subscribe(events.append)
    deal = services.deals.create(title="Fleet", amount=100)
    won = next(s for s in services.pipelines.stages(deal.pipeline_id) if s.is_won)
    moved = services.deals.move_to_stage(deal.id, won.id)
    assert moved.status == "won" and moved.stage_name == "Won"
    stage_events = [e for e in events if e.name == "deal.stage_changed"]
    assert stage_events and stage_events[0].payload["new_stage_id"] == won.id


def test_delete_is_a_tombstone(services):
    c = services.contacts.create(first_name="Tom", last_name="Stone")
    services.contacts.delete(c.id)
    with pytest.raises(NotFound):
        services.contacts.get(c.id)
    assert services.contacts.find(c.id, include_deleted=True).deleted_at is not None
    assert services.contacts.count() == 0
    assert services.contacts.search("stone") == []


def test_every_change_is_audited_with_its_actor(services):
    plugin_services = services.as_actor(Actor.plugin("sample-plugin"))
    c = plugin_services.contacts.create(first_name="Ann", last_name="Lee")
    services.contacts.update(c.id, email="ann@lee.io")
    history = services.audit.for_record("contact", c.id)
    assert [(h.action, h.actor_kind, h.actor_name) for h in history] == [
        ("update", "user", "local"), ("create", "plugin", "sample-plugin")]
    assert history[0].changes == {"email": [None, "ann@lee.io"]}


def test_failed_write_changes_nothing_and_publishes_nothing(services):
    events = []
    services.events.subscribe(events.append)
    c = services.contacts.create(first_name="Ann", last_name="Lee")
    events.clear()
    with pytest.raises(ValidationError):
        services.contacts.update(c.id, last_name="Lee-Smith", email="broken")
    assert services.contacts.get(c.id).last_name == "Lee"
    assert events == []
    assert len(services.audit.for_record("contact", c.id)) == 1


def test_keyset_pages_cover_every_row_once(services):
    for i in range(25):
        services.contacts.create(first_name=f"P{i:02d}", last_name="Zed" if i % 2 else "Abel")
    seen, key = [], None
    while True:
        page = services.contacts.list(sort=Sort("name"), after=key, limit=7)
        seen += [c.id for c in page.items]
        if not page.has_more:
            break
        key = page.last_key
    assert len(seen) == 25 == len(set(seen))
    names = [services.contacts.get(i).last_name for i in seen]
    assert names == sorted(names)
    back = services.contacts.list(sort=Sort("name"), before=page.first_key, limit=7)
    assert [c.id for c in back.items] == seen[-7 - len(page.items):-len(page.items)]


def test_list_filters_in_sql(services):
    acme = services.companies.create(name="Acme")
    services.contacts.create(first_name="A", last_name="One", company_id=acme.id, tags=["vip"])
    services.contacts.create(first_name="B", last_name="Two", tags=["vip"])
    services.contacts.create(first_name="C", last_name="Three")
    assert services.contacts.count(ListQuery(tag="VIP")) == 2
    assert services.contacts.count(ListQuery(company_id=acme.id)) == 1
    assert [c.last_name for c in services.contacts.list(ListQuery(text="thr")).items] == ["Three"]


def test_search_follows_company_rename(services):
    acme = services.companies.create(name="Acme")
    services.contacts.create(first_name="A", last_name="One", company_id=acme.id)
    services.companies.update(acme.id, name="Globex")
    assert [c.last_name for c in services.contacts.search("globex")] == ["One"]
    assert services.contacts.search("acme") == []
