"""Duplicate warnings before saving, the review list, and merging two contacts."""

from __future__ import annotations

import pytest

from crm_desktop.errors import NotFound, ValidationError


def test_same_email_phone_or_name_at_company_is_reported_with_its_reason(services):
    services.phone_region = "DE"  # as <home>/settings.json {"phoneRegion": "DE"} sets it (test_phone_email.py)
    acme = services.companies.create(name="Acme")
    maria = services.contacts.create(first_name="Maria", last_name="Müller", email="Maria@Acme.de",
                                     phone="+49 30 1234567", company_id=acme.id)
    like = services.duplicates.contacts_like
    assert [(m.contact_id, m.reason) for m in like(first_name="X", email=" maria@acme.DE ")] == \
        [(maria.id, "same e-mail")]
    assert [m.reason for m in like(first_name="X", mobile="030 1234567")] == ["same phone"]
    assert [m.reason for m in like(first_name="maria", last_name="MULLER", company_id=acme.id)] == \
        ["same name at the same company"]
    match = like(first_name="Maria", last_name="Müller", email="maria@acme.de", company_id=acme.id)[0]
    assert match.reasons == ("same e-mail", "same name at the same company")
    assert match.display_name == "Maria Müller"


def test_no_warning_for_a_namesake_elsewhere_itself_or_a_deleted_contact(services):
    acme, other = services.companies.create(name="Acme"), services.companies.create(name="Other")
    maria = services.contacts.create(first_name="Maria", last_name="Müller", email="m@acme.de", company_id=acme.id)
    like = services.duplicates.contacts_like
    assert like(first_name="Maria", last_name="Müller", company_id=other.id) == []
    assert like(first_name="Maria", last_name="Müller") == []  # no company: a name alone is too common
    assert like(email="m@acme.de", exclude_id=maria.id) == []
    assert like(email="half-typed@", phone="12") == []
    services.contacts.delete(maria.id)
    assert like(email="m@acme.de") == []


def test_duplicate_groups_join_contacts_linked_by_any_reason(services):
    services.phone_region = "DE"  # "0171 ..." is a German mobile number
    acme = services.companies.create(name="Acme")
    a = services.contacts.create(first_name="Ann", last_name="A", email="ann@x.de")
    b = services.contacts.create(first_name="Anne", last_name="A", email="ANN@x.de", phone="0171 5550001")
    c = services.contacts.create(first_name="Annie", last_name="A", mobile="+49 171 5550001")
    d = services.contacts.create(first_name="Bo", last_name="B", company_id=acme.id)
    e = services.contacts.create(first_name="bo", last_name="b", company_id=acme.id)
    services.contacts.create(first_name="Solo", last_name="S", email="solo@x.de")
    groups = services.duplicates.find_duplicate_groups()
    assert [g.contact_ids for g in groups] == [(a.id, b.id, c.id), (d.id, e.id)]
    assert groups[0].reasons == ("same e-mail", "same phone")
    assert groups[1].reasons == ("same name at the same company",)
    assert len(services.duplicates.find_duplicate_groups(limit=1)) == 1


def test_merge_moves_everything_fills_empty_fields_and_tombstones_the_duplicate(services):
    events = []
    services.events.subscribe(events.append)
    acme = services.companies.create(name="Acme")
    keep = services.contacts.create(first_name="Maria", last_name="Müller", email="m@acme.de", tags=["vip"])
    dup = services.contacts.create(first_name="Mary", last_name="Mueller", email="old@acme.de",
                                   phone="030 111222", company_id=acme.id, tags=["berlin"])
    call = services.activities.log("call", "Intro call", contact_id=dup.id)
    deal = services.deals.create(title="Fleet", contact_id=dup.id)
    result = services.merge.contacts(keep.id, dup.id)
    merged = services.contacts.get(keep.id)
    assert (merged.first_name, merged.email, merged.phone, merged.company_name) == \
        ("Maria", "m@acme.de", "030 111222", "Acme")
    assert merged.tags == ("berlin", "vip")
    assert result.moved_activities == 1 and result.moved_deals == 1
    assert result.fields_taken == ("company_id", "phone")
    assert services.activities.get(call.id).contact_id == keep.id
    assert services.deals.get(deal.id).contact_id == keep.id
    assert services.contacts.find(dup.id) is None
    assert services.contacts.find(dup.id, include_deleted=True).deleted_at is not None
    assert [m.contact_id for m in services.duplicates.contacts_like(phone="030 111222")] == [keep.id]
    merged_events = [e for e in events if e.name == "contact.merged"]
    assert merged_events[0].payload["survivor_id"] == keep.id
    assert merged_events[0].payload["duplicate_id"] == dup.id
    actions = {(a.entity, a.record_id) for a in services.audit.recent(action="merge")}
    assert {("contact", keep.id), ("contact", dup.id), ("activity", call.id), ("deal", deal.id)} <= actions
    assert [h.id for h in services.search.search("mueller")] == []


def test_merge_takes_the_chosen_side(services):
    keep = services.contacts.create(first_name="Maria", last_name="Müller", email="new@acme.de", city="Berlin")
    dup = services.contacts.create(first_name="Maria", last_name="Mueller", email="old@acme.de")
    services.merge.contacts(keep.id, dup.id, {"email": "duplicate", "city": "survivor"})
    merged = services.contacts.get(keep.id)
    assert (merged.email, merged.city, merged.last_name) == ("old@acme.de", "Berlin", "Müller")


@pytest.mark.parametrize("choices, message", [
    ({"shoe_size": "duplicate"}, "'shoe_size' is invalid: is not a field a merge chooses"),
    ({"email": "both"}, "field_choices[email]: 'both' is invalid: must be 'survivor' or 'duplicate'"),
])
def test_bad_merge_choices_change_nothing(services, choices, message):
    keep = services.contacts.create(first_name="A", last_name="One")
    dup = services.contacts.create(first_name="B", last_name="Two", email="b@x.de")
    with pytest.raises(ValidationError) as info:
        services.merge.contacts(keep.id, dup.id, choices)
    assert message in str(info.value)
    assert services.contacts.get(keep.id).email is None
    assert services.contacts.find(dup.id) is not None


def test_merge_refuses_the_same_or_a_missing_contact(services):
    keep = services.contacts.create(first_name="A", last_name="One")
    with pytest.raises(ValidationError, match="must be another contact than the survivor"):
        services.merge.contacts(keep.id, keep.id)
    with pytest.raises(NotFound, match="no contact with id nope"):
        services.merge.contacts(keep.id, "nope")
    assert services.contacts.get(keep.id).deleted_at is None
