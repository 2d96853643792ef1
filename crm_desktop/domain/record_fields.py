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
        return str(check_choice(value, choices, field, entity, default).value)
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


@dataclass(frozen=True)
class FieldSpec:
    """Everything the program knows about one field of one entity, in one place.

    ``kind`` is one of text, multiline, email, phone, url, ref, choice, int, bool, datetime,
    date, currency, tags. ``max_len`` bounds text (and ``low``/``high`` whole numbers);
    ``choices`` is the enum of a choice. ``label`` is what a form or a column calls it.
    ``csv`` is the column key on CSV/vCard import and export (None: not in files), ``header``
    the column header written on export, ``aliases``/``weak_aliases`` the other spellings
    an import recognises (normalised: lower case, letters and digits only; a weak one counts
    only when no column names the field better, e.g. Outlook's "Title" is Mr/Ms).
    """

    name: str
    kind: str
    label: str
    max_len: int | None = None
    required: bool = False
    choices: type[StrEnum] | None = None
    default: StrEnum | None = None
    low: int = 0
    high: int = 0
    csv: str | None = None
    header: str | None = None
    aliases: tuple[str, ...] = ()
    weak_aliases: tuple[str, ...] = ()

    def rule(self) -> FieldRule:
        """The sync check of this field (:data:`ENTITY_FIELDS`)."""
        return FieldRule(_check_of(self), self.required)


def _check_of(spec: FieldSpec) -> Check:
    kind = spec.kind
    if kind in ("text", "multiline"):
        return _text(spec.max_len or 500, required=spec.required)
    if kind == "ref":
        return _ref
    if kind == "choice":
        assert spec.choices is not None, spec.name
        return _choice(spec.choices, spec.default)
    if kind == "int":
        return _int(spec.low, spec.high)
    simple: dict[str, Check] = {"bool": _bool, "datetime": _datetime, "date": _date, "email": _email,
                                "phone": _phone, "url": _url, "currency": _currency, "tags": _tags}
    return simple[kind]


# the spellings of the columns other programs write (docs/user-guide.md lists them):
#   Google Contacts, current export: First Name, Last Name, E-mail 1 - Value, Phone 1 - Value (+ Label),
#     Organization Name, Organization Title, Address 1 - Street/City/Postal Code/Country, Labels, Notes
#   Google Contacts, older export: Name, Given Name, Family Name, E-mail 1 - Value, Phone 1 - Value (+ Type),
#     Organization 1 - Name, Organization 1 - Title, Group Membership
#   Outlook: First Name, Last Name, E-mail Address, Business Phone, Mobile Phone, Company, Job Title,
#     Business Street/City/Postal Code/Country/Region, Categories (its "Title" is Mr/Ms: weak)
#   HubSpot: First Name, Last Name, Email, Phone Number, Mobile Phone Number, Company Name, Job Title,
#     Street Address, City, Postal Code, Country/Region ("Record ID" is HubSpot's id, not ours)
#   Salesforce reports: First Name, Last Name, Title, Account Name, Email, Phone, Mobile,
#     Mailing Street/City/Zip/Postal Code/Country ("Contact ID" is Salesforce's id)
#   Pipedrive: Person - Name, Person - First name, Person - Last name, Person - Email (- Work),
#     Person - Phone (- Work / - Mobile), Person - Organization, Person - Job title, Person - Note
_EMAIL = ("email", "emailaddress", "mail", "email1", "emailaddress1", "primaryemail", "e", "email1value",
          "personemail", "personemailwork", "workemail", "businessemail", "emailwork", "personemailhome")
_PHONE = ("phone", "telephone", "phonenumber", "workphone", "businessphone", "officephone", "telefon",
          "phone1", "phone1value", "personphone", "personphonework", "primaryphone", "telephonenumber",
          "phonework", "businessphone1", "personphoneother", "homephone", "personphonehome")
_PHONE_WEAK = ("tel", "phone3value", "otherphone")
_STREET = ("street", "streetaddress", "address1", "businessstreet", "strasse", "address1street",
           "mailingstreet", "personaddressstreet", "homestreet")
_CITY = ("city", "town", "locality", "businesscity", "ort", "stadt", "address1city", "mailingcity",
         "personaddresscity", "homecity")
_POSTAL = ("postalcode", "zip", "zipcode", "postcode", "plz", "businesspostalcode", "address1postalcode",
           "mailingzippostalcode", "mailingpostalcode", "zippostalcode", "personaddresspostalcode", "homepostalcode")
_COUNTRY = ("country", "countryregion", "businesscountry", "businesscountryregion", "land", "address1country",
            "mailingcountry", "personaddresscountry", "homecountryregion", "homecountry")
_TAGS = ("tags", "tag", "categories", "labels", "groups", "groupmembership", "personlabel")
_NOTES = ("notes", "note", "comments", "comment", "description", "remarks", "personnote", "personnotes")
_COMPANY = ("company", "companyname", "organization", "organisation", "organizationname", "organization1name",
            "organisationname", "accountname", "personorganization", "personorganisation", "employer", "firma",
            "account")


def _f(name: str, kind: str, label: str, max_len: int | None = None, **more: Any) -> FieldSpec:
    return FieldSpec(name, kind, label, max_len, **more)


def _address() -> tuple[FieldSpec, ...]:
    return (
        _f("street", "text", "Street", 300, csv="street", header="Street", aliases=_STREET, weak_aliases=("address",)),
        _f("city", "text", "City", 100, csv="city", header="City", aliases=_CITY),
        _f("postal_code", "text", "Postal code", 20, csv="postal_code", header="Postal Code", aliases=_POSTAL),
        _f("country", "text", "Country", 100, csv="country", header="Country", aliases=_COUNTRY),
    )


_SCOPE_SPECS = (_f("owner_id", "ref", "Owner", 36), _f("team_id", "ref", "Team", 36))

#: Every field of every synced entity, in the column order of CSV files. The sync checks
#: (:data:`ENTITY_FIELDS`), the services' text limits, the forms' labels, the CSV and vCard
#: columns and import header spellings all read this table; ``tests/unit/test_record_fields.py``
#: fails when a storage column has no entry here.
FIELD_TABLE: dict[str, tuple[FieldSpec, ...]] = {
    EntityName.COMPANY: (
        _f("name", "text", "Name", 300, required=True, csv="name", header="Name",
           aliases=("name", "companyname", "company", "organization", "organisation", "accountname", "firma",
                    "organizationname", "organisationname")),
        _f("website", "url", "Website", 300, csv="website", header="Website",
           aliases=("website", "web", "url", "homepage", "webpage", "site", "websiteurl", "companydomainname")),
        _f("industry", "text", "Industry", 100, csv="industry", header="Industry",
           aliases=("industry", "sector", "branche")),
        _f("email", "email", "Email", 254, csv="email", header="E-mail", aliases=_EMAIL),
        _f("phone", "phone", "Phone", 40, csv="phone", header="Phone", aliases=_PHONE, weak_aliases=_PHONE_WEAK),
        *_address(),
        _f("tags", "tags", "Tags", csv="tags", header="Tags", aliases=_TAGS),
        _f("notes", "multiline", "Notes", 100_000, csv="notes", header="Notes", aliases=_NOTES),
        *_SCOPE_SPECS,
    ),
    EntityName.CONTACT: (
        _f("first_name", "text", "First name", 100, csv="first_name", header="First Name",
           aliases=("firstname", "givenname", "first", "forename", "vorname", "prenom", "personfirstname")),
        _f("last_name", "text", "Last name", 100, csv="last_name", header="Last Name",
           aliases=("lastname", "familyname", "surname", "last", "nachname", "nom", "personlastname")),
        _f("email", "email", "Email", 254, csv="email", header="E-mail", aliases=_EMAIL),
        _f("phone", "phone", "Phone", 40, csv="phone", header="Phone", aliases=_PHONE, weak_aliases=_PHONE_WEAK),
        _f("mobile", "phone", "Mobile", 40, csv="mobile", header="Mobile",
           aliases=("mobile", "mobilephone", "cell", "cellphone", "mobilenumber", "handy", "phone2", "phone2value",
                    "mobilephonenumber", "personphonemobile", "phonemobile", "mobiltelefon")),
        _f("job_title", "text", "Job title", 150, csv="job_title", header="Job Title",
           aliases=("jobtitle", "organizationtitle", "organization1title", "organisationtitle", "personjobtitle",
                    "position", "funktion"), weak_aliases=("title", "role", "function")),
        # in files the company is its name ("company"), matched or created on import
        _f("company_id", "ref", "Company", 36, csv="company", header="Company", aliases=_COMPANY),
        *_address(),
        _f("tags", "tags", "Tags", csv="tags", header="Tags", aliases=_TAGS),
        _f("notes", "multiline", "Notes", 100_000, csv="notes", header="Notes", aliases=_NOTES),
        *_SCOPE_SPECS,
    ),
    EntityName.LEAD: (
        _f("title", "text", "Title", 300, required=True),
        _f("first_name", "text", "First name", 100), _f("last_name", "text", "Last name", 100),
        _f("company_name", "text", "Company", 300), _f("email", "email", "Email", 254),
        _f("phone", "phone", "Phone", 40),
        _f("status", "choice", "Status", choices=LeadStatus, default=LeadStatus.NEW),
        _f("source", "text", "Source", 100), _f("notes", "multiline", "Notes", 100_000),
        _f("converted_at", "datetime", "Converted"),
        _f("converted_contact_id", "ref", "Converted to contact", 36),
        _f("converted_company_id", "ref", "Converted to company", 36),
        _f("converted_deal_id", "ref", "Converted to deal", 36),
        _f("tags", "tags", "Tags"), *_SCOPE_SPECS,
    ),
    EntityName.DEAL: (
        _f("title", "text", "Title", 300, required=True),
        _f("pipeline_id", "ref", "Pipeline", 36, required=True), _f("stage_id", "ref", "Stage", 36, required=True),
        _f("amount_cents", "int", "Amount", high=10**15), _f("currency", "currency", "Currency", 3),
        _f("status", "choice", "Status", choices=DealStatus, default=DealStatus.OPEN),
        _f("company_id", "ref", "Company", 36), _f("contact_id", "ref", "Contact", 36),
        _f("expected_close", "date", "Expected close"), _f("stage_changed_at", "datetime", "Stage changed"),
        _f("notes", "multiline", "Notes", 100_000), _f("tags", "tags", "Tags"), *_SCOPE_SPECS,
    ),
    EntityName.ACTIVITY: (
        _f("kind", "choice", "Kind", choices=ActivityKind, required=True),
        _f("subject", "text", "Subject", 300, required=True),
        _f("body", "multiline", "Notes", 100_000), _f("due_at", "datetime", "Due"), _f("done_at", "datetime", "Done"),
        _f("location", "text", "Location", 300), _f("contact_id", "ref", "Contact", 36),
        _f("company_id", "ref", "Company", 36), _f("deal_id", "ref", "Deal", 36), _f("lead_id", "ref", "Lead", 36),
        *_SCOPE_SPECS,
    ),
    EntityName.PIPELINE: (
        _f("name", "text", "Name", 200, required=True), _f("position", "int", "Position", high=1_000_000),
        _f("is_default", "bool", "Default"), *_SCOPE_SPECS,
    ),
    EntityName.STAGE: (
        _f("pipeline_id", "ref", "Pipeline", 36, required=True), _f("name", "text", "Name", 200, required=True),
        _f("position", "int", "Position", high=1_000_000), _f("probability", "int", "Probability", high=100),
        _f("is_won", "bool", "Won"), _f("is_lost", "bool", "Lost"), *_SCOPE_SPECS,
    ),
    EntityName.TAG: (
        _f("name", "text", "Name", 100, required=True), _f("color", "text", "Colour", 20), *_SCOPE_SPECS,
    ),
    EntityName.USER: (
        _f("username", "text", "User name", 100, required=True),
        _f("display_name", "text", "Name", 200, required=True), _f("email", "email", "Email", 254),
        _f("role", "choice", "Role", choices=Role, default=Role.REP), *_SCOPE_SPECS,
    ),
}

#: Storage columns that are no field of their own: keys the services derive from fields for
#: sorting, search and duplicate detection (``tests/unit/test_record_fields.py`` allows these).
DERIVED_COLUMNS: dict[str, frozenset[str]] = {
    EntityName.CONTACT: frozenset({"name_key", "email_key", "phone_key", "mobile_key"}),
    EntityName.COMPANY: frozenset({"name_key"}),
    EntityName.TAG: frozenset({"name_key"}),
}

#: entity -> field -> the sync rule it obeys (derived from :data:`FIELD_TABLE`)
ENTITY_FIELDS: dict[str, dict[str, FieldRule]] = {
    entity: {spec.name: spec.rule() for spec in specs} for entity, specs in FIELD_TABLE.items()
}


def field_specs(entity: str) -> tuple[FieldSpec, ...]:
    """The fields of ``entity`` in table order; :class:`ValidationError` for an unknown entity."""
    try:
        return FIELD_TABLE[entity]
    except KeyError:
        allowed = ", ".join(sorted(FIELD_TABLE))
        raise ValidationError("entity", entity, f"must be one of {allowed}") from None


def field_spec(entity: str, name: str) -> FieldSpec:
    """One field of ``entity``; :class:`ValidationError` naming the fields when there is none."""
    for spec in field_specs(entity):
        if spec.name == name:
            return spec
    raise ValidationError(name, name, f"is not a field of {entity}", entity)


def label(entity: str, name: str) -> str:
    """What forms and columns call field ``name`` of ``entity``."""
    return field_spec(entity, name).label


def text_limits(entity: str) -> tuple[tuple[str, int], ...]:
    """``(field, max_len)`` of the optional free-text fields of ``entity`` and of its scope
    references (``owner_id``, ``team_id``), in table order: what the services check on save
    beside the fields that need rules of their own."""
    return tuple((s.name, s.max_len) for s in field_specs(entity) if s.max_len is not None and not s.required
                 and (s.kind in ("text", "multiline") or s.name in SCOPE_FIELDS))


def max_len(entity: str, name: str) -> int:
    """The length limit of text field ``name`` of ``entity``."""
    limit = field_spec(entity, name).max_len
    if limit is None:
        raise ValueError(f"{entity}.{name} has no length limit")
    return limit


def csv_fields(entity: str) -> tuple[str, ...]:
    """The column keys of ``entity`` in CSV and vCard files, in export order (``id`` first)."""
    return ("id", *(s.csv for s in field_specs(entity) if s.csv is not None))


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
