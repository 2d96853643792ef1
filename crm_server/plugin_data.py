"""Synced plugin data on the server: typed JSON documents per (plugin, table).

The server knows no plugin code. A plugin's synced table is an entity named
``<plugin>.<table>`` (``invoicing.invoices``); its records live in the same ``records``
store and change log as core records, scoped by owner and team by the same rules
(:mod:`crm_server.scope`), and merged per field by the same push code. What stands in for
:mod:`crm_desktop.domain.record_fields` is the JSON schema the plugin publishes: clients
that run the plugin send it (``PUT /api/v1/sync/schemas``) before they push, it is kept in
``plugin_schemas``, and every mutation's fields and every merged record are validated
against it (``jsonschema``, draft 2020-12). A mutation of a plugin entity without a schema
is rejected (``validation``) and the client keeps it to resend.

Which schema wins: the one published by the highest plugin version (``packaging``
versions); a device on an older version does not downgrade it (``kept_newer``), and the same
version re-sent is ``unchanged``. Any signed-in device may publish a schema; the admin
decides which plugins run at all (plugin policy), so a schema comes from a plugin the
organisation lets its devices run.

Numbers: a property with ``"x-crm-sequence": {"name": "invoicing.invoice", "when": "issued",
"per": "issue_year"}`` is numbered by the server. When a pushed record has ``when`` truthy
and no number yet, the push takes the next value of the sequence ``name:<per value>``
(``plugin_sequences``, in the push's transaction) and stores it in the record; the laptop
gets it back with the next pull. Clients may not set or change such a field, and a record
that has a number is never deleted (``rejected``): so numbers never repeat and have no gaps,
whichever laptop issued the record offline and in whatever order they sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_desktop.domain import record_fields
from crm_desktop.errors import ValidationError
from crm_desktop.sync.protocol import (
    Mutation,
    MutationCheck,
    Op,
    PluginSchemaResult,
    PluginSchemasResponse,
    PluginTableSchema,
)
from crm_server.auth import now
from crm_server.models import PluginSchemaRow, PluginSequenceRow

#: fields of every record the store sets; a mutation naming one is refused (as for core records)
SYSTEM_FIELDS = frozenset(record_fields.SYSTEM_FIELDS) | {"revision"}
SCOPE_FIELDS = ("owner_id", "team_id")


class SchemaRefused(ValueError):
    """A published schema is not a usable JSON schema for a plugin table."""


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def _check_schema(item: PluginTableSchema) -> None:
    schema = item.json_schema
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaRefused(f"schema of {item.entity}: not a valid JSON schema ({exc.message})") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise SchemaRefused(f"schema of {item.entity}: must be an object schema with properties")
    system = sorted(SYSTEM_FIELDS & set(schema["properties"]))
    if system:
        raise SchemaRefused(f"schema of {item.entity}: {', '.join(system)} are set by the server, not fields")
    if not item.entity.startswith(item.plugin + "."):
        raise SchemaRefused(f"schema of {item.entity}: the entity must start with the plugin name {item.plugin!r}")


def publish(session: Session, items: list[PluginTableSchema], published_by: str) -> PluginSchemasResponse:
    """Store each schema unless a newer plugin version's is kept; raises :class:`SchemaRefused`."""
    for item in items:
        _check_schema(item)
    results = []
    for item in items:
        row = session.get(PluginSchemaRow, item.entity, with_for_update=True)
        if row is None:
            session.add(PluginSchemaRow(entity=item.entity, plugin=item.plugin, plugin_version=item.plugin_version,
                                        schema=item.json_schema, published_by=published_by, updated_at=now()))
            status = "stored"
        elif _version(row.plugin_version) > _version(item.plugin_version):
            status = "kept_newer"
        elif row.schema == item.json_schema and row.plugin_version == item.plugin_version:
            status = "unchanged"
        else:
            row.plugin, row.plugin_version, row.schema = item.plugin, item.plugin_version, item.json_schema
            row.published_by, row.updated_at = published_by, now()
            status = "stored"
        results.append(PluginSchemaResult(entity=item.entity, status=status,
                                          plugin_version=row.plugin_version if row is not None and
                                          status == "kept_newer" else item.plugin_version))
    return PluginSchemasResponse(results=results)


@dataclass
class TableRules:
    """One plugin entity's schema, ready to check mutations and records."""

    entity: str
    schema: dict[str, Any]
    validator: Draft202012Validator

    @property
    def properties(self) -> dict[str, Any]:
        return self.schema.get("properties", {})

    @property
    def sequences(self) -> dict[str, dict[str, Any]]:
        """Fields the server numbers: ``{"x-crm-sequence": {"name", "when", "per"}}`` on a property."""
        return {name: prop["x-crm-sequence"] for name, prop in self.properties.items()
                if isinstance(prop, dict) and isinstance(prop.get("x-crm-sequence"), dict)}

    def number(self, session: Session, current: Mapping[str, Any] | None, merged: dict[str, Any]) -> None:
        """Assign the server's numbers (see the module docs, "Numbers") to ``merged`` in place.

        Raises :class:`ValidationError` when a mutation tries to set or change a numbered field."""
        for field, rule in self.sequences.items():
            before = (current or {}).get(field)
            if merged.get(field) != before:
                raise ValidationError(field, merged.get(field), "is numbered by the server, not by a client",
                                      self.entity)
            if before is not None or not merged.get(rule.get("when", "")):
                continue
            per = rule.get("per")
            key = f"{rule.get('name', self.entity + '.' + field)}:{merged.get(per) if per else ''}"
            merged[field] = next_number(session, key)

    def numbered(self, record: Mapping[str, Any]) -> str | None:
        """The numbered field a record already has a number in, or None (such a record is never deleted)."""
        return next((f for f in self.sequences if record.get(f) is not None), None)

    def _field_error(self, name: str, value: Any) -> str | None:
        prop = self.properties.get(name)
        if prop is None:
            return "is not a field of this table's schema"
        error = next(iter(Draft202012Validator(prop).iter_errors(value)), None)
        return error.message if error is not None else None

    def check_mutation(self, mutation: Mutation) -> MutationCheck:
        if mutation.op is Op.DELETE:
            if mutation.fields:
                raise ValidationError("fields", sorted(mutation.fields), "a delete carries no fields", mutation.entity)
            return MutationCheck(entity=mutation.entity, new={}, base={})
        new = mutation.new()
        for name, value in new.items():
            if name in SYSTEM_FIELDS:
                raise ValidationError(name, value, "is set by the server, not by a mutation", mutation.entity)
            if name in SCOPE_FIELDS:
                if value is not None and not (isinstance(value, str) and len(value) <= 36):
                    raise ValidationError(name, value, "must be an id (text of at most 36 characters)",
                                          mutation.entity)
                continue
            problem = self._field_error(name, value)
            if problem:
                raise ValidationError(name, value, problem, mutation.entity)
        return MutationCheck(entity=mutation.entity, new=new, base=mutation.base())

    def check_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The merged record: valid against the whole schema (required fields, types)."""
        full = {k: v for k, v in record.items()}
        full.setdefault("owner_id", None)
        full.setdefault("team_id", None)
        document = {k: v for k, v in full.items() if k not in SCOPE_FIELDS or k in self.properties}
        # fields the record holds that an older schema does not name are kept, not checked
        unknown = {k for k in document if k not in self.properties}
        checked = {k: v for k, v in document.items() if k not in unknown}
        errors = sorted(self.validator.iter_errors(checked), key=lambda e: list(e.path))
        if errors:
            error = errors[0]
            field = ".".join(str(p) for p in error.path) or (error.validator_value[0]
                                                             if error.validator == "required" else "record")
            raise ValidationError(str(field), checked.get(str(field)), error.message, self.entity)
        return full


def next_number(session: Session, key: str) -> int:
    """The next value of the sequence ``key``, in the caller's (push) transaction.

    The row is locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers), so two pushes
    never take the same value, and a push that rolls back gives its value back: no gaps."""
    table = PluginSequenceRow.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(table).values(key=key, value=0).on_conflict_do_nothing(index_elements=["key"]))
    query = select(table.c.value).where(table.c.key == key)
    if dialect == "postgresql":
        query = query.with_for_update()
    value = session.execute(query).scalar_one() + 1
    session.execute(table.update().where(table.c.key == key).values(value=value))
    return value


def rules_for(session: Session, entities: set[str]) -> dict[str, TableRules]:
    """The rules of the plugin entities among ``entities`` that have a schema."""
    wanted = sorted(e for e in entities if "." in e)
    if not wanted:
        return {}
    out = {}
    for row in session.scalars(select(PluginSchemaRow).where(PluginSchemaRow.entity.in_(wanted))):
        out[row.entity] = TableRules(row.entity, row.schema, Draft202012Validator(row.schema))
    return out
