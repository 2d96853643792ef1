"""The sync protocol, version 1: every request and response body as a pydantic model.

Imported by the desktop client and by the server (``crm_server``), so both sides
agree on the wire format by construction. Qt-free and free of storage: it needs
only pydantic and :mod:`crm_desktop.domain`. ``docs/sync-protocol.md`` describes
the rules behind the shapes (exactly-once, merge, scope, pull ordering).

Every request under ``/api/v1`` carries the header ``X-CRM-Sync-Protocol: 1``;
a server answers a missing or different version with 400 and an
:class:`ErrorBody` whose ``error`` is ``protocol_mismatch``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from crm_desktop.domain import record_fields
from crm_desktop.domain.enums import EntityName
from crm_desktop.domain.validation import strip_controls

# the names and constants live in protocol_base (no pydantic), so that opening a database need not import it
from crm_desktop.sync.protocol_base import (  # noqa: F401  (part of this module's interface)
    API_PREFIX, APP_VERSION_HEADER, DEFAULT_PULL_LIMIT, MAX_INT64, MAX_PULL_LIMIT, MAX_PUSH_BATCH, PENDING_HEADER,
    PROTOCOL_HEADER, PROTOCOL_HEADERS, PROTOCOL_VERSION, PUSHABLE_ENTITIES, SHARED_ENTITIES, START_CURSOR, Op,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- errors


class ErrorBody(_Model):
    """The body of every 4xx answer: a machine-readable code and one clear sentence."""

    error: str = Field(description="e.g. protocol_mismatch, unauthorized, rate_limited, invalid_cursor")
    detail: str = Field(description="One sentence for a person: what was wrong and what to do.")


# --------------------------------------------------------------------------- auth


class LoginRequest(_Model):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)
    device_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$",
                           description="Made once by the client (a UUID) and kept for the life of its home.")
    device_name: str = Field(default="", max_length=200, description="Shown to admins, e.g. the host name.")


class RefreshRequest(_Model):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(_Model):
    refresh_token: str | None = Field(default=None, max_length=512,
                                      description="Optional: the session is also found from the access token.")


class UserInfo(_Model):
    id: str
    username: str
    display_name: str
    role: str
    teams: list[str] = Field(description="Ids of the user's teams.")


class TokenPair(_Model):
    """Answer to login and refresh. The refresh token is single use: each refresh answers a new one."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    device_id: str
    user: UserInfo


class LogoutResponse(_Model):
    signed_out: bool = True


# --------------------------------------------------------------------------- push


class Mutation(_Model):
    """One outbox entry. ``fields`` maps a field name to ``[base, new]``: the value the
    client's edit started from and the value it set (base is null for a create)."""

    mutation_id: int = Field(gt=0, le=MAX_INT64, description="Increases by at least one per device, across pushes.")
    entity: str = Field(max_length=40, description="e.g. contact; checked per mutation, not per batch.")
    id: str = Field(min_length=1, max_length=64)
    op: Op
    fields: dict[str, tuple[JsonValue, JsonValue]] = Field(default_factory=dict)
    base_version: int = Field(default=0, ge=0, le=MAX_INT64, description="The record's server version the edit started from.")
    actor: str | None = Field(default=None, max_length=120,
                              description="Who made the edit on the device: user, plugin:<name> or agent:<name> "
                                          "(recorded in the server's audit; absent means the user).")

    def base(self) -> dict[str, Any]:
        return {name: pair[0] for name, pair in self.fields.items()}

    def new(self) -> dict[str, Any]:
        return {name: pair[1] for name, pair in self.fields.items()}


def is_plugin_entity(entity: str) -> bool:
    """A synced plugin table's entity (``<plugin>.<table>``, e.g. ``invoicing.invoices``): its
    fields are checked against the JSON schema the plugin published (:class:`PluginTableSchema`),
    not against :mod:`crm_desktop.domain.record_fields`."""
    return "." in entity


class MutationCheck(_Model):
    """A mutation whose entity and new values passed the domain rules; values normalised."""

    entity: str
    new: dict[str, JsonValue]
    base: dict[str, JsonValue]


def check_mutation(mutation: Mutation) -> MutationCheck:
    """Check a mutation against the domain rules (the same on client and server).

    Raises :class:`crm_desktop.errors.ValidationError` naming the field, the value
    and the rule. Base values are normalised too, so that a base spelled
    differently from the stored value still compares equal.
    """
    from crm_desktop.errors import ValidationError

    rules = record_fields.field_rules(mutation.entity)
    if mutation.entity not in PUSHABLE_ENTITIES:
        raise ValidationError("entity", mutation.entity, "is managed on the server and cannot be pushed")
    if mutation.op is Op.DELETE and mutation.fields:
        raise ValidationError("fields", sorted(mutation.fields), "a delete carries no fields", mutation.entity)
    new = record_fields.clean_fields(mutation.entity, mutation.new())
    base: dict[str, Any] = {}
    for name, value in mutation.base().items():
        try:
            base[name] = rules[name].check(value, name, mutation.entity)
        except ValidationError:
            base[name] = value  # an old base may predate a rule; compare it as sent
    return MutationCheck(entity=mutation.entity, new=new, base=base)


class PluginTableSchema(_Model):
    """The JSON schema of one synced plugin table's records, published by the clients that run the plugin."""

    entity: str = Field(max_length=40, pattern=r"^[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*$",
                        description="<plugin>.<table without the plugin prefix>, e.g. invoicing.invoices")
    plugin: str = Field(min_length=1, max_length=100)
    plugin_version: str = Field(max_length=50, description="The plugin version that published this schema.")
    json_schema: dict[str, JsonValue] = Field(
        alias="schema", description="JSON Schema (draft 2020-12) of a record's fields, owner_id/team_id included.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PluginSchemasRequest(_Model):
    """``PUT /sync/schemas``: the schemas of the synced plugin tables this device has."""

    schemas: list[PluginTableSchema] = Field(max_length=200)


class PluginSchemaResult(_Model):
    entity: str
    status: str = Field(description="stored | unchanged | kept_newer (the server has a newer plugin version's "
                                    "schema and keeps it)")
    plugin_version: str


class PluginSchemasResponse(_Model):
    results: list[PluginSchemaResult]


class PushRequest(_Model):
    mutations: list[Mutation] = Field(max_length=MAX_PUSH_BATCH)


class MutationStatus(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    VALIDATION = "validation"
    PERMISSION = "permission"
    SCOPE = "scope"
    UNKNOWN_RECORD = "unknown_record"


class ConflictKind(StrEnum):
    FIELDS = "fields"
    """Some fields were changed on the server to other values than the client's base."""
    DELETED = "deleted"
    """An edit arrived for a record deleted on the server; nothing was applied."""
    EDITED = "edited"
    """A delete arrived for a record someone else changed since its base; it was not deleted."""


class FieldConflict(_Model):
    field: str
    base: JsonValue
    mine: JsonValue
    theirs: JsonValue


class MutationResult(_Model):
    mutation_id: int
    status: MutationStatus
    version: int | None = Field(default=None, description="The record's server version after this mutation.")
    applied_fields: list[str] = Field(default_factory=list)
    conflict: ConflictKind | None = None
    conflicts: list[FieldConflict] = Field(default_factory=list)
    theirs: dict[str, JsonValue] | None = Field(
        default=None, description="For a conflict: the server's record as it stands (null if deleted).")
    reason: RejectReason | None = None
    message: str | None = Field(default=None, description="For a rejection: one sentence for the rep.")
    original: "MutationResult | None" = Field(
        default=None, description="For a duplicate: the answer the mutation got when it was applied, if kept.")


class PushResponse(_Model):
    results: list[MutationResult]
    last_mutation_id: int = Field(description="The last mutation id the server has applied for this device.")


# --------------------------------------------------------------------------- pull


class ChangeKind(StrEnum):
    UPSERT = "upsert"
    TOMBSTONE = "tombstone"
    REMOVE = "remove"
    """The record left this user's scope: delete the local copy without a tombstone."""


class PulledChange(_Model):
    kind: ChangeKind
    entity: str
    id: str
    version: int | None = Field(default=None, description="Ignore the change if the local version is higher.")
    record: dict[str, JsonValue] | None = Field(
        default=None, description="For an upsert: every field, plus owner_id, team_id, created_at, updated_at.")

    @field_validator("record")
    @classmethod
    def _without_controls(cls, record: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        """Pulled text loses its control characters as typed text does (a pull is never refused
        for them: the server's record wins, cleaned)."""
        if record is None:
            return None
        return {name: strip_controls(value, name) if isinstance(value, str) else value
                for name, value in record.items()}


class PullResponse(_Model):
    changes: list[PulledChange]
    cursor: str = Field(description="Opaque; send it as ?cursor= on the next pull. Apply the page and store "
                                    "the cursor in one local transaction.")
    has_more: bool


# --------------------------------------------------------------------------- events, plugins


class Nudge(_Model):
    """The data of a server-sent ``changes`` event: something new may be pulled."""

    reason: str = "changes"


class PublishedPlugin(_Model):
    name: str
    version: str
    sha256: str
    signature: dict[str, JsonValue] = Field(description="The bundle's .sig document, verbatim.")
    url: str = Field(description="Where to download the bundle, relative to the server.")
    published_at: str


class PluginPolicy(_Model):
    """The organisation's plugin policy, edited in the admin console; clients apply it on sync."""

    allowed: list[str] | None = Field(default=None, description="If set, only these plugins may run.")
    blocked: list[str] = Field(default_factory=list, description="These plugins never run.")
    required: list[str] = Field(default_factory=list, description="These published plugins must be installed.")


class PluginList(_Model):
    plugins: list[PublishedPlugin]
    policy: PluginPolicy = Field(default_factory=PluginPolicy)


class PluginState(StrEnum):
    INSTALLED = "installed"
    REFUSED = "refused"
    FAILED = "failed"


class PluginReportItem(_Model):
    name: str = Field(max_length=100)
    version: str | None = Field(default=None, max_length=50)
    state: PluginState
    reason: str | None = Field(default=None, max_length=1000, description="Why it was refused or failed.")


class PluginReport(_Model):
    """``POST /plugins/report``: what the device runs of the published plugins, and what it refused."""

    plugins: list[PluginReportItem] = Field(max_length=500)


class PluginReportAck(_Model):
    recorded: int
