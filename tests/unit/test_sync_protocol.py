"""The shared protocol module: Qt-free, and mutations checked by the domain rules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crm_desktop.domain import record_fields
from crm_desktop.errors import ValidationError
from crm_desktop.sync import protocol as p


def test_the_protocol_imports_without_qt_or_storage():
    code = ("import sys, crm_desktop.sync.protocol;"
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'sqlalchemy', 'crm_desktop.storage'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_mutation_is_checked_and_normalised_by_the_domain_rules():
    m = p.Mutation(mutation_id=1, entity="deal", id="d1", op="update",
                   fields={"currency": ["EUR", "usd"], "expected_close": [None, "2026-05-01"]}, base_version=3)
    checked = p.check_mutation(m)
    assert checked.new == {"currency": "USD", "expected_close": "2026-05-01"}


@pytest.mark.parametrize("entity, fields, message", [
    ("contact", {"email": [None, "nope"]}, "contact.email: 'nope' is invalid: must be an e-mail address like name@example.com"),
    ("contact", {"version": [1, 2]}, "contact.version: 2 is invalid: is set by the server, not by a mutation"),
    ("contact", {"colour": [None, "red"]}, "contact.colour: 'red' is invalid: is not a field of contact"),
    ("user", {"role": [None, "admin"]}, "entity: 'user' is invalid: is managed on the server and cannot be pushed"),
    ("stage", {"probability": [None, 120]}, "stage.probability: 120 is invalid: must be between 0 and 100"),
])
def test_a_bad_mutation_names_the_field_the_value_and_the_rule(entity, fields, message):
    with pytest.raises(ValidationError) as error:
        p.check_mutation(p.Mutation(mutation_id=1, entity=entity, id="x", op="update", fields=fields))
    assert str(error.value) == message


def test_a_whole_record_needs_its_required_fields():
    with pytest.raises(ValidationError, match="a first or last name is required"):
        record_fields.check_record("contact", {"email": "a@example.com"})
    record = record_fields.check_record("company", {"name": " Acme ", "tags": ["b", "a", "b"]})
    assert record["name"] == "Acme" and record["tags"] == ["a", "b"] and record["city"] is None


def test_every_entity_of_the_domain_has_field_rules():
    from crm_desktop.domain.enums import EntityName
    assert set(record_fields.ENTITY_FIELDS) == set(EntityName)
    assert p.PUSHABLE_ENTITIES | {EntityName.USER} == set(EntityName)
