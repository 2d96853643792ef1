"""Converting a lead into a contact, a company and a deal."""

from __future__ import annotations

import pytest

from crm_desktop.domain.enums import LeadStatus
from crm_desktop.errors import ValidationError


def make_lead(services, **fields):
    values = dict(title="Fleet of 12 vans", first_name="Maria", last_name="Müller", company_name="Acme GmbH",
                  email="maria@acme.de", phone="030 1234567", tags=["expo"])
    values.update(fields)
    return services.leads.create(**values)


def test_conversion_creates_contact_company_and_deal_and_marks_the_lead(services):
    events = []
    services.events.subscribe(events.append)
    lead = make_lead(services)
    note = services.activities.log("note", "Met at the expo", lead_id=lead.id)
    result = services.leads.convert(lead.id, amount=12000)
    contact = services.contacts.get(result.contact_id)
    company = services.companies.get(result.company_id)
    deal = services.deals.get(result.deal_id)
    assert (contact.display_name, contact.email, contact.phone, contact.company_name, contact.tags) == \
        ("Maria Müller", "maria@acme.de", "030 1234567", "Acme GmbH", ("expo",))
    assert company.name == "Acme GmbH" and result.company_created
    assert (deal.title, deal.amount_cents, deal.contact_id, deal.company_id) == \
        ("Fleet of 12 vans", 1_200_000, contact.id, company.id)
    converted = services.leads.get(lead.id)
    assert converted.status is LeadStatus.CONVERTED
    assert (converted.converted_contact_id, converted.converted_company_id, converted.converted_deal_id) == \
        (contact.id, company.id, deal.id)
    assert converted.converted_at is not None
    moved = services.activities.get(note.id)
    assert (moved.contact_id, moved.company_id, moved.deal_id, moved.lead_id) == \
        (contact.id, company.id, deal.id, lead.id)
    assert [e.payload for e in events if e.name == "lead.converted"] == [{
        "id": lead.id, "contact_id": contact.id, "company_id": company.id, "deal_id": deal.id,
        "company_created": True}]
    assert "convert" in [a.action for a in services.audit.for_record("lead", lead.id)]
    assert "convert" in [a.action for a in services.audit.for_record("activity", note.id)]


def test_an_existing_company_with_the_same_name_is_reused(services):
    acme = services.companies.create(name="ACME  gmbh")
    result = services.leads.convert(make_lead(services).id, create_deal=False)
    assert result.company_id == acme.id and not result.company_created
    assert result.deal_id is None
    assert services.companies.count() == 1
    assert services.deals.count() == 0


def test_named_company_and_contact_are_used_instead_of_new_ones(services):
    globex = services.companies.create(name="Globex")
    homer = services.contacts.create(first_name="Homer", last_name="Simpson", company_id=globex.id)
    result = services.leads.convert(make_lead(services).id, company_id=globex.id, contact_id=homer.id,
                                    deal_title="Donuts")
    assert (result.company_id, result.contact_id) == (globex.id, homer.id)
    assert services.contacts.count() == 1 and services.companies.count() == 1
    assert services.deals.get(result.deal_id).title == "Donuts"


def test_converting_twice_is_refused_and_changes_nothing(services):
    lead = make_lead(services)
    services.leads.convert(lead.id)
    with pytest.raises(ValidationError, match=r"lead\.lead_id: .* was converted already on \d{4}-\d\d-\d\d"):
        services.leads.convert(lead.id)
    assert services.contacts.count() == 1 and services.deals.count() == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"company_id": "nope"}, "lead.company_id: 'nope' is invalid: must be the id of an existing company"),
    ({"contact_id": "nope"}, "lead.contact_id: 'nope' is invalid: must be the id of an existing contact"),
    ({"amount": "-3"}, "deal.amount: '-3' is invalid: must be 0 or more"),
])
def test_bad_input_rolls_everything_back(services, kwargs, message):
    lead = make_lead(services)
    with pytest.raises(ValidationError) as info:
        services.leads.convert(lead.id, **kwargs)
    assert str(info.value) == message
    after = services.leads.get(lead.id)
    assert after.converted_at is None and after.status is LeadStatus.NEW
    assert services.contacts.count() == 0 and services.companies.count() == 0 and services.deals.count() == 0


def test_a_lead_without_a_person_becomes_company_and_deal(services):
    lead = services.leads.create(title="Website inquiry", company_name="Initech")
    result = services.leads.convert(lead.id)
    assert result.contact_id is None
    assert services.companies.get(result.company_id).name == "Initech"
    assert services.deals.get(result.deal_id).company_name == "Initech"


def test_converted_is_set_by_converting_only_and_then_kept(services):
    lead = make_lead(services)
    with pytest.raises(ValidationError, match="is set by converting the lead"):
        services.leads.update(lead.id, status="converted")
    with pytest.raises(ValidationError, match="is set by converting the lead"):
        services.leads.create(title="Sneaky", status="converted")
    assert services.leads.get(lead.id).status is LeadStatus.NEW
    services.leads.convert(lead.id)
    with pytest.raises(ValidationError, match="the lead was converted already"):
        services.leads.update(lead.id, status="qualified")
    services.leads.update(lead.id, notes="signed in May", status="converted")  # other edits still save
    got = services.leads.get(lead.id)
    assert (got.status, got.notes) == (LeadStatus.CONVERTED, "signed in May")


def test_converted_leads_are_found_by_the_status_filter(services):
    from crm_desktop.services.paging import ListQuery

    converted, open_lead = make_lead(services), make_lead(services, title="Other", company_name="Beta AG")
    services.leads.convert(converted.id)
    assert [r.id for r in services.leads.list(ListQuery(status="converted")).items] == [converted.id]
    assert [r.id for r in services.leads.list(ListQuery(status="new")).items] == [open_lead.id]
