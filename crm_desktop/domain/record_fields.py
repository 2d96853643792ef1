"""The synced fields of every entity and the rule each one obeys, as plain data.

The sync protocol carries records as JSON objects of these fields. The client
checks an outgoing mutation with :func:`clean_fields` before it queues it, and the
server checks the same mutation with the same function (and the merged record
with :func:`check_record`), so a record that is valid on the laptop is valid on
the server. The rules are the ones of :mod:`crm_desktop.domain.validation`; a
value comes out normalised and JSON-ready (dates and times as ISO 8601 text).

Reference fields (``company_id`` ...) are checked for shape here only: whether the
referenced record exists is a question for the store that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping

from crm_desktop.domain.enums import ActivityKind, DealStatus, EntityName, LeadStatus, Role
from crm_desktop.domain.validation import (
    check_choice,
    check_date,
    check_datetime,
    check_email,
    check_phone,
    check_url,
    clean_text,
)
from crm_desktop.errors import ValidationError

Check = Callable[[object, str, str], Any]

#: Fields every synced record has that a mutation may set (scope: who sees the record).
SCOPE_FIELDS = ("owner_id", "team_id")
#: Fields only the store sets; a mutation naming one is refused.
SYSTEM_FIELDS = ("id", "created_at", "updated_at", "version", "deleted_at")


def _text(max_len: int, required: bool = False) -> Check:
    def check(value: object, field: str, entity: str) -> str | None:
        return clean_text(value, field, entity=entity, max_len=max_len, required=required)
    return check


def _ref(value: object, field: str, entity: str) -> str | None:
    """An id of another record: UUID text, or nothing."""
    return clean_text(value, field, entity=entity, max_len=36)


def _choice(choices: type[StrEnum], default: StrEnum | None = None) -> Check:
    def check(value: object, field: str, entity: str) -> str:
        return check_choice(value, choices, field, entity, default).value
    return check


def _int(low: int, high: int) -> Check:
    def check(value: object, field: str, entity: str) -> int:
        if value is None:
            return low if low > 0 else 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(field, value, "must be a whole number", entity)
        if not low <= value <= high:
            raise ValidationError(field, value, f"must be between {low} and {high}", entity)
        return value
    return check


def _bool(value: object, field: str, entity: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(field, value, "must be true or false", entity)
    return value


def _datetime(value: object, field: str, entity: str) -> str | None:
    result = check_datetime(value, field, entity)
    return result.isoformat() if result is not None else None


def _date(value: object, field: str, entity: str) -> str | None:
    result = check_date(value, field, entity)
    return result.isoformat() if result is not None else None


def _email(value: object, field: str, entity: str) -> str | None:
    return check_email(value, field, entity)


def _phone(value: object, field: str, entity: str) -> str | None:
    return check_phone(value, field, entity)


def _url(value: object, field: str, entity: str) -> str | None:
    return check_url(value, field, entity)


def _currency(value: object, field: str, entity: str) -> str:
    text = clean_text(value, field, entity=entity, max_len=3) or "EUR"
    if len(text) != 3 or not text.isalpha():
        raise ValidationError(field, text, "must be a three-letter code like EUR", entity)
    return text.upper()


def _tags(value: object, field: str, entity: str) -> list[str]:
    """A set of tag ids, sorted so that equal sets compare equal in a merge."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 36 for v in value):
        raise ValidationError(field, value, "must be a list of tag ids", entity)
    if len(value) > 200:
        raise ValidationError(field, f"{len(value)} tags", "must be at most 200 tags", entity)
    return sorted(set(value))


@dataclass(frozen=True)
class FieldRule:
    """One synced field: how to check and normalise a value, and whether it must be present."""

    check: Check
    required: bool = False


_ADDRESS = {
    "street": FieldRule(_text(300)), "city": FieldRule(_text(100)),
    "postal_code": FieldRule(_text(20)), "country": FieldRule(_text(100)),
}
_SCOPE = {"owner_id": FieldRule(_ref), "team_id": FieldRule(_ref)}

ENTITY_FIELDS: dict[str, dict[str, FieldRule]] = {
    EntityName.COMPANY: {
        "name": FieldRule(_text(300, required=True), required=True),
        "website": FieldRule(_url), "industry": FieldRule(_text(100)),
        "email": FieldRule(_email), "phone": FieldRule(_phone), **_ADDRESS,
        "notes": FieldRule(_text(100_000)), "tags": FieldRule(_tags), **_SCOPE,
    },
    EntityName.CONTACT: {
        "first_name": FieldRule(_text(100)), "last_name": FieldRule(_text(100)),
        "email": FieldRule(_email), "phone": FieldRule(_phone), "mobile": FieldRule(_phone),
        "job_title": FieldRule(_text(150)), "company_id": FieldRule(_ref), **_ADDRESS,
        "notes": FieldRule(_text(100_000)), "tags": FieldRule(_tags), **_SCOPE,
    },
    EntityName.LEAD: {
        "title": FieldRule(_text(300, required=True), required=True),
        "first_name": FieldRule(_text(100)), "last_name": FieldRule(_text(100)),
        "company_name": FieldRule(_text(300)), "email": FieldRule(_email), "phone": FieldRule(_phone),
        "status": FieldRule(_choice(LeadStatus, LeadStatus.NEW)), "source": FieldRule(_text(100)),
        "notes": FieldRule(_text(100_000)), "converted_at": FieldRule(_datetime),
        "converted_contact_id": FieldRule(_ref), "converted_company_id": FieldRule(_ref),
        "converted_deal_id": FieldRule(_ref), "tags": FieldRule(_tags), **_SCOPE,
    },
    EntityName.DEAL: {
        "title": FieldRule(_text(300, required=True), required=True),
        "pipeline_id": FieldRule(_ref, required=True), "stage_id": FieldRule(_ref, required=True),
        "amount_cents": FieldRule(_int(0, 10**15)), "currency": FieldRule(_currency),
        "status": FieldRule(_choice(DealStatus, DealStatus.OPEN)),
        "company_id": FieldRule(_ref), "contact_id": FieldRule(_ref),
        "expected_close": FieldRule(_date), "stage_changed_at": FieldRule(_datetime),
        "notes": FieldRule(_text(100_000)), "tags": FieldRule(_tags), **_SCOPE,
    },
    EntityName.ACTIVITY: {
        "kind": FieldRule(_choice(ActivityKind), required=True),
        "subject": FieldRule(_text(300, required=True), required=True),
        "body": FieldRule(_text(100_000)), "due_at": FieldRule(_datetime), "done_at": FieldRule(_datetime),
        "location": FieldRule(_text(300)), "contact_id": FieldRule(_ref), "company_id": FieldRule(_ref),
        "deal_id": FieldRule(_ref), "lead_id": FieldRule(_ref), **_SCOPE,
    },
    EntityName.PIPELINE: {
        "name": FieldRule(_text(200, required=True), required=True),
        "position": FieldRule(_int(0, 1_000_000)), "is_default": FieldRule(_bool), **_SCOPE,
    },
    EntityName.STAGE: {
        "pipeline_id": FieldRule(_ref, required=True),
        "name": FieldRule(_text(200, required=True), required=True),
        "position": FieldRule(_int(0, 1_000_000)), "probability": FieldRule(_int(0, 100)),
        "is_won": FieldRule(_bool), "is_lost": FieldRule(_bool), **_SCOPE,
    },
    EntityName.TAG: {
        "name": FieldRule(_text(100, required=True), required=True),
        "color": FieldRule(_text(20)), **_SCOPE,
    },
    EntityName.USER: {
        "username": FieldRule(_text(100, required=True), required=True),
        "display_name": FieldRule(_text(200, required=True), required=True),
        "email": FieldRule(_email), "role": FieldRule(_choice(Role, Role.REP)), **_SCOPE,
    },
}


def field_rules(entity: str) -> dict[str, FieldRule]:
    """The rules of one entity; :class:`ValidationError` for an entity that is not synced."""
    try:
        return ENTITY_FIELDS[entity]
    except KeyError:
        allowed = ", ".join(sorted(ENTITY_FIELDS))
        raise ValidationError("entity", entity, f"must be one of {allowed}") from None


def clean_value(entity: str, name: str, value: object) -> Any:
    """One field's value checked and normalised; unknown and system fields are refused."""
    rules = field_rules(entity)
    if name in SYSTEM_FIELDS:
        raise ValidationError(name, value, "is set by the server, not by a mutation", entity)
    rule = rules.get(name)
    if rule is None:
        raise ValidationError(name, value, f"is not a field of {entity}", entity)
    return rule.check(value, name, entity)


def clean_fields(entity: str, fields: Mapping[str, object]) -> dict[str, Any]:
    """Several fields checked and normalised (a partial record, as an update carries)."""
    return {name: clean_value(entity, name, value) for name, value in fields.items()}


def check_record(entity: str, record: Mapping[str, object]) -> dict[str, Any]:
    """A whole record (every field present, missing ones as their empty value), checked.

    Adds the rules that span fields, such as a contact needing a first or last name.
    """
    rules = field_rules(entity)
    out: dict[str, Any] = {}
    for name, rule in rules.items():
        value = record.get(name)
        if rule.required and (value is None or value == ""):
            raise ValidationError(name, value, "is required", entity)
        out[name] = rule.check(value, name, entity)
    if entity == EntityName.CONTACT and not out["first_name"] and not out["last_name"]:
        raise ValidationError("last_name", record.get("last_name"), "a first or last name is required", entity)
    return out
