"""The field table (crm_desktop.domain.record_fields.FIELD_TABLE) is the one place that knows
each entity's fields: every storage column has an entry, and the lists that used to be kept by
hand (sync rules, service limits, form labels, CSV columns and headers) all come from it."""

from __future__ import annotations

import pytest

from crm_desktop.domain import record_fields
from crm_desktop.domain.enums import EntityName
from crm_desktop.errors import ValidationError
from crm_desktop.services import csv_format
from crm_desktop.storage import models
from crm_desktop.storage.base import SYNC_COLUMN_NAMES, Base
from crm_desktop.ui.entities import SPECS

#: the storage model of each synced entity
MODELS = {
    EntityName.COMPANY: models.Company, EntityName.CONTACT: models.Contact, EntityName.LEAD: models.Lead,
    EntityName.DEAL: models.Deal, EntityName.ACTIVITY: models.Activity, EntityName.PIPELINE: models.Pipeline,
    EntityName.STAGE: models.Stage, EntityName.TAG: models.Tag, EntityName.USER: models.User,
}
#: tables that hold no entity (the app's own bookkeeping)
NOT_ENTITIES = {"audit_entries", "audit_entry_records", "sync_outbox", "sync_conflicts", "sync_state",
                "sync_parked_changes", "sync_plugin_tables"}


def test_every_entity_table_has_a_model_here():
    """A new entity table fails here until it is given its fields (and a model above)."""
    entity_tables = {t.name for t in Base.metadata.sorted_tables
                     if t.name not in NOT_ENTITIES and "_tags" not in t.name and not t.name.endswith("_fts")}
    assert entity_tables == {m.__tablename__ for m in MODELS.values()}
    assert set(MODELS) == set(record_fields.FIELD_TABLE) == set(EntityName)


@pytest.mark.parametrize("entity", sorted(MODELS))
def test_every_column_of_every_entity_has_a_field_entry(entity):
    """A column added to a model without a field entry (or an entry without a column) fails."""
    columns = {c.name for c in MODELS[entity].__table__.columns}
    fields = {s.name for s in record_fields.field_specs(entity)}
    # every synced table's own bookkeeping (id, times, version, local revision) is no field
    system = set(SYNC_COLUMN_NAMES) - set(record_fields.SCOPE_FIELDS)
    stored = columns - system - record_fields.DERIVED_COLUMNS.get(entity, frozenset())
    # tags live in a link table, not a column
    assert stored == fields - {"tags"}, (f"{entity}: columns without a field entry: {sorted(stored - fields)}; "
                                          f"entries without a column: {sorted(fields - stored - {'tags'})}")


def test_sync_rules_come_from_the_table():
    for entity, specs in record_fields.FIELD_TABLE.items():
        assert list(record_fields.ENTITY_FIELDS[entity]) == [s.name for s in specs]
    with pytest.raises(ValidationError, match="must be at most 150 characters"):
        record_fields.clean_value("contact", "job_title", "x" * 151)


def test_service_limits_forms_and_files_read_the_table(services):
    spec = record_fields.field_spec("contact", "job_title")
    services.contacts.create(last_name="Ng", job_title="x" * spec.max_len)
    with pytest.raises(ValidationError, match=f"must be at most {spec.max_len} characters"):
        services.contacts.create(last_name="Ng", job_title="x" * (spec.max_len + 1))

    form = {f.name: f for f in SPECS["contacts"].form}
    assert form["job_title"].label == spec.label
    assert {f.name: f.required for f in SPECS["companies"].form}["name"] is True

    assert csv_format.FIELDS["contact"] == record_fields.csv_fields("contact")
    assert csv_format.EXPORT_HEADERS["job_title"] == spec.header
    assert csv_format.guess_mapping(["Organization Title"], "contact") == {"Organization Title": "job_title"}


def test_pipeline_names_have_one_limit_on_the_laptop_and_on_the_server(services):
    """The service used to refuse pipeline names over 100 characters that sync accepts (200)."""
    limit = record_fields.max_len("pipeline", "name")
    assert services.pipelines.create(name="p" * limit).name == "p" * limit
    with pytest.raises(ValidationError, match=f"at most {limit}"):
        services.pipelines.create(name="p" * (limit + 1))


def test_unknown_names_are_refused_with_the_rule():
    with pytest.raises(ValidationError, match="must be one of"):
        record_fields.field_specs("invoice")
    with pytest.raises(ValidationError, match="is not a field of contact"):
        record_fields.field_spec("contact", "shoe_size")
