"""The record facades: ``ctx.contacts``, ``ctx.companies``, ``ctx.leads``, ``ctx.deals``,
``ctx.activities``, ``ctx.users``, ``ctx.pipelines`` and ``ctx.tags``.

Each verb checks the plugin's permission first (reads ``<resource>:read``, writes
``<resource>:write``; a refusal raises :class:`PermissionDenied` and is audited),
checks its arguments (a bad one raises :class:`ValidationError` naming it, before
anything is touched) and then forwards to a *store* the host gives it. The stores
are the protocols below; the host implements them over its services
(``crm_desktop.plugin_host.facade``), so this module imports no internals.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Iterator, Mapping, Protocol, Sequence, TypeVar

from crm_desktop.domain.enums import ActivityKind
from crm_desktop.domain.records import Activity, Company, Contact, Deal, Lead, Pipeline, Stage, Tag, User
from crm_desktop.errors import ValidationError
from crm_desktop.plugin_api.aggregates import Aggregates
from crm_desktop.plugin_api.paging import MAX_LIMIT, Page
from crm_desktop.plugin_api.records import Conversion

R = TypeVar("R")
RC = TypeVar("RC", covariant=True)  # what a store hands out

#: The entities ``ctx.tags`` can tag, and the permission resource of each.
TAGGABLE = {"company": "companies", "contact": "contacts", "lead": "leads", "deal": "deals"}


class Gate(Protocol):
    """What the host gives the facade to check a permission (raises :class:`PermissionDenied`)."""

    def check(self, permission: str, operation: str) -> None: ...

    def allowed(self, permission: str) -> bool: ...


class RecordStore(Protocol[RC]):
    """One entity's records, acting as the plugin (implemented by the host)."""

    def get(self, record_id: str) -> RC: ...

    def list(self, *, limit: int, cursor: str | None, sort: str | None, descending: bool,
             filters: Mapping[str, Any]) -> Page[RC]: ...

    def count(self, filters: Mapping[str, Any]) -> int: ...

    def search(self, text: str, limit: int) -> "Sequence[RC]": ...

    def create(self, **fields: Any) -> RC: ...

    def update(self, record_id: str, **fields: Any) -> RC: ...

    def delete(self, record_id: str) -> None: ...

    def aggregate(self, *, group_by: builtins.list[str], measures: Mapping[str, str],
                  filters: Mapping[str, Any]) -> builtins.list[dict[str, Any]]: ...


class DealStore(RecordStore[Deal], Protocol):
    """Deals, plus moving them through their pipeline."""

    def move_to_stage(self, deal_id: str, stage_id: str) -> Deal: ...

    def win(self, deal_id: str) -> Deal: ...

    def lose(self, deal_id: str, reason: str | None) -> Deal: ...


class ActivityStore(RecordStore[Activity], Protocol):
    """Activities, plus logging, scheduling and completing them."""

    def log(self, kind: str, subject: str, fields: Mapping[str, Any]) -> Activity: ...

    def schedule(self, kind: str, subject: str, due_at: datetime, fields: Mapping[str, Any]) -> Activity: ...

    def complete(self, activity_id: str, outcome: str | None) -> Activity: ...


class LeadStore(RecordStore[Lead], Protocol):
    """Leads, plus converting one."""

    def convert(self, lead_id: str, *, create_deal: bool, deal_name: str | None,
                amount: Decimal | int | str | None) -> Conversion: ...


class UserStore(RecordStore[User], Protocol):
    """Users, plus who is signed in."""

    def current(self) -> User: ...


class PipelineStore(Protocol):
    """Pipelines and their stages (read only)."""

    def pipelines(self) -> list[Pipeline]: ...

    def stages(self, pipeline_id: str) -> list[Stage]: ...


class TagStore(Protocol):
    """Tags and tagging."""

    def all(self) -> list[Tag]: ...

    def add(self, entity: str, record_id: str, name: str) -> None: ...

    def remove(self, entity: str, record_id: str, name: str) -> None: ...

    def of(self, entity: str, record_id: str) -> list[Tag]: ...


def check_limit(limit: object, entity: str, *, maximum: int = MAX_LIMIT, field: str = "limit") -> int:
    """``limit`` as an int in 1..``maximum``; :class:`ValidationError` otherwise (never truncated)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise ValidationError(field, limit, f"must be a whole number from 1 to {maximum} "
                                              f"(ask for the next page with cursor=page.next_cursor)", entity)
    return limit


def _text(value: object, field: str, entity: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, value, "must be a non-empty text", entity)
    return value


class RecordsFacade(Aggregates, Generic[R]):
    """One entity's records (``ctx.contacts``, ``ctx.deals``, ...): ``<resource>:read`` / ``:write``.

    ``aggregate(...)`` (grouped counts and sums in SQL) comes from :class:`~crm_desktop.plugin_api.aggregates.Aggregates`.
    """

    _service: RecordStore[R]

    def __init__(self, resource: str, service: RecordStore[R], gate: Gate):
        self._resource = resource
        self._service = service
        self._gate = gate

    def _check(self, action: str, operation: str) -> None:
        self._gate.check(f"{self._resource}:{action}", f"{self._resource}.{operation}")

    def get(self, record_id: str) -> R:
        """The record with ``record_id``; :class:`NotFound` if there is none."""
        self._check("read", "get")
        return self._service.get(record_id)

    def list(self, *, limit: int = 200, cursor: str | None = None, sort: str | None = None,
             descending: bool = False, **filters: Any) -> Page[R]:
        """One :class:`Page` of at most ``limit`` (1..1000) records, filtered by ``filters`` (``text``,
        ``tag``, ``status``, ``owner_id``, ...); ``cursor=page.next_cursor`` for the next page."""
        self._check("read", "list")
        check_limit(limit, self._resource)
        return self._service.list(limit=limit, cursor=cursor, sort=sort, descending=descending, filters=filters)

    def count(self, **filters: Any) -> int:
        """How many records match ``filters`` (the same filters as :meth:`list`)."""
        self._check("read", "count")
        return self._service.count(filters)

    def iter_all(self, batch: int = 500, **filters: Any) -> Iterator[R]:
        """Every record matching ``filters``, page by page (``batch`` records per read, 1..1000)."""
        self._check("read", "list")
        check_limit(batch, self._resource, field="batch")
        # the first page is read now, so a wrong filter or a refusal raises at the call, not at the first next()
        first = self._service.list(limit=batch, cursor=None, sort=None, descending=False, filters=filters)
        return self._pages(first, batch, filters)

    def _pages(self, page: Page[R], batch: int, filters: Mapping[str, Any]) -> Iterator[R]:
        while True:
            yield from page
            if page.next_cursor is None:
                return
            page = self._service.list(limit=batch, cursor=page.next_cursor, sort=None, descending=False,
                                      filters=filters)

    def search(self, text: str, limit: int = 50) -> builtins.list[R]:
        """Records matching the words of ``text``, best first (at most ``limit``, 1..1000)."""
        self._check("read", "search")
        check_limit(limit, self._resource)
        return builtins.list(self._service.search(text, limit))

    def create(self, **fields: Any) -> R:
        """Create a record from ``fields``; returns it as stored."""
        self._check("write", "create")
        return self._service.create(**fields)

    def update(self, record_id: str, **fields: Any) -> R:
        """Change the given fields of a record; returns it as stored."""
        self._check("write", "update")
        return self._service.update(record_id, **fields)

    def delete(self, record_id: str) -> None:
        """Delete (tombstone) a record."""
        self._check("write", "delete")
        self._service.delete(record_id)


class ContactsFacade(RecordsFacade[Contact]):
    """``ctx.contacts``: people (``contacts:read`` / ``contacts:write``)."""


class CompaniesFacade(RecordsFacade[Company]):
    """``ctx.companies``: organisations (``companies:read`` / ``companies:write``)."""


class DealsFacade(RecordsFacade[Deal]):
    """``ctx.deals``: deals and their way through the pipeline (``deals:read`` / ``deals:write``)."""

    _service: DealStore

    def __init__(self, service: DealStore, gate: Gate):
        super().__init__("deals", service, gate)

    def move_to_stage(self, deal_id: str, stage_id: str) -> Deal:
        """Move a deal to another stage of its pipeline (as a drag on the board); publishes
        ``deal.stage_changed`` with ``{id, from_stage_id, to_stage_id, status}``. A won or lost
        stage sets the deal's status."""
        self._check("write", "move_to_stage")
        return self._service.move_to_stage(_text(deal_id, "deal_id", "deal"), _text(stage_id, "stage_id", "deal"))

    def win(self, deal_id: str) -> Deal:
        """Move a deal to its pipeline's won stage (status ``won``)."""
        self._check("write", "win")
        return self._service.win(_text(deal_id, "deal_id", "deal"))

    def lose(self, deal_id: str, reason: str | None = None) -> Deal:
        """Move a deal to its pipeline's lost stage (status ``lost``); a ``reason`` is logged on the deal
        as a note activity in the same transaction (needs ``activities:write`` too)."""
        self._check("write", "lose")
        if reason is not None:
            self._gate.check("activities:write", "deals.lose (reason note)")
            if not isinstance(reason, str):
                raise ValidationError("reason", reason, "must be a text or None", "deal")
        return self._service.lose(_text(deal_id, "deal_id", "deal"), reason)


class LeadsFacade(RecordsFacade[Lead]):
    """``ctx.leads``: leads and converting them (``leads:read`` / ``leads:write``)."""

    _service: LeadStore

    def __init__(self, service: LeadStore, gate: Gate):
        super().__init__("leads", service, gate)

    def convert(self, lead_id: str, *, create_deal: bool = True, deal_name: str | None = None,
                amount: Decimal | int | str | None = None) -> Conversion:
        """Turn a lead into a contact, a company (an existing one of the same name is reused) and, with
        ``create_deal``, a deal named ``deal_name`` (default: the lead's title) of ``amount``; all in one
        transaction. Needs ``leads:write``, ``contacts:write``, ``companies:write`` and, with
        ``create_deal``, ``deals:write``."""
        self._check("write", "convert")
        for resource in ("contacts", "companies") + (("deals",) if create_deal else ()):
            self._gate.check(f"{resource}:write", "leads.convert")
        return self._service.convert(_text(lead_id, "lead_id", "lead"), create_deal=bool(create_deal),
                                     deal_name=deal_name, amount=amount)


class ActivitiesFacade(RecordsFacade[Activity]):
    """``ctx.activities``: calls, meetings, visits, tasks and notes (``activities:read`` / ``:write``)."""

    _service: ActivityStore

    def __init__(self, service: ActivityStore, gate: Gate):
        super().__init__("activities", service, gate)

    def log(self, kind: ActivityKind | str, subject: str, *, contact_id: str | None = None,
            company_id: str | None = None, deal_id: str | None = None, notes: str | None = None,
            occurred_at: datetime | None = None) -> Activity:
        """Log something that happened (done at ``occurred_at``, default now) on the given records."""
        self._check("write", "log")
        fields = {"contact_id": contact_id, "company_id": company_id, "deal_id": deal_id, "body": notes,
                  "done_at": occurred_at}
        return self._service.log(str(kind), subject, {k: v for k, v in fields.items() if v is not None})

    def schedule(self, kind: ActivityKind | str, subject: str, due_at: datetime, *, contact_id: str | None = None,
                 company_id: str | None = None, deal_id: str | None = None, notes: str | None = None) -> Activity:
        """Plan something (a follow-up call, a meeting) for ``due_at`` (open until completed)."""
        self._check("write", "schedule")
        if not isinstance(due_at, datetime):
            raise ValidationError("due_at", due_at, "must be a datetime", "activity")
        fields = {"contact_id": contact_id, "company_id": company_id, "deal_id": deal_id, "body": notes}
        return self._service.schedule(str(kind), subject, due_at, {k: v for k, v in fields.items() if v is not None})

    def complete(self, activity_id: str, outcome: str | None = None) -> Activity:
        """Mark an activity done now; an ``outcome`` is added to its notes."""
        self._check("write", "complete")
        if outcome is not None and not isinstance(outcome, str):
            raise ValidationError("outcome", outcome, "must be a text or None", "activity")
        return self._service.complete(_text(activity_id, "activity_id", "activity"), outcome)


class UsersFacade(RecordsFacade[User]):
    """``ctx.users``: the CRM's users (``users:read`` / ``users:write``)."""

    _service: UserStore

    def __init__(self, service: UserStore, gate: Gate):
        super().__init__("users", service, gate)

    def search(self, text: str, limit: int = 20) -> builtins.list[User]:
        """Users whose user name, display name or email contains ``text`` (case-insensitive)."""
        return super().search(text, limit)

    def current(self) -> User:
        """The signed-in user (not signed in: the local user, id ``local``)."""
        self._check("read", "current")
        return self._service.current()


class PipelinesFacade:
    """``ctx.pipelines``: pipelines and their stages (``pipelines:read``, or ``deals:read``)."""

    def __init__(self, service: PipelineStore, gate: Gate):
        self._service = service
        self._gate = gate

    def _check(self, operation: str) -> None:
        if not self._gate.allowed("deals:read"):
            self._gate.check("pipelines:read", f"pipelines.{operation}")

    def list(self) -> builtins.list[Pipeline]:
        """Every pipeline, the default first in board order."""
        self._check("list")
        return self._service.pipelines()

    def stages(self, pipeline_id: str) -> builtins.list[Stage]:
        """The stages of ``pipeline_id`` in board order (with ``probability``, ``is_won``, ``is_lost``);
        :class:`NotFound` if there is no such pipeline."""
        self._check("stages")
        return self._service.stages(_text(pipeline_id, "pipeline_id", "pipeline"))


class TagsFacade:
    """``ctx.tags``: tags and tagging. Reading needs ``tags:read``, tagging ``tags:write``; both also
    need the read (or write) permission of the tagged record's resource."""

    def __init__(self, service: TagStore, gate: Gate):
        self._service = service
        self._gate = gate

    def _resource(self, entity: str) -> str:
        resource = TAGGABLE.get(entity) if isinstance(entity, str) else None
        if resource is None:
            raise ValidationError("entity", entity, f"must be one of {', '.join(TAGGABLE)}", "tag")
        return resource

    def list(self) -> builtins.list[Tag]:
        """Every tag, by name."""
        self._gate.check("tags:read", "tags.list")
        return self._service.all()

    def of(self, entity: str, record_id: str) -> builtins.list[Tag]:
        """The tags of one record of ``entity`` (``contact``, ``company``, ``lead``, ``deal``), by name."""
        resource = self._resource(entity)
        self._gate.check("tags:read", "tags.of")
        self._gate.check(f"{resource}:read", "tags.of")
        return self._service.of(entity, _text(record_id, "record_id", entity))

    def add(self, entity: str, record_id: str, name: str) -> None:
        """Tag a record with ``name`` (the tag is made if it does not exist; no change if already tagged)."""
        resource = self._resource(entity)
        self._gate.check("tags:write", "tags.add")
        self._gate.check(f"{resource}:write", "tags.add")
        self._service.add(entity, _text(record_id, "record_id", entity), _text(name, "name", "tag"))

    def remove(self, entity: str, record_id: str, name: str) -> None:
        """Take tag ``name`` off a record (no change if it does not have it)."""
        resource = self._resource(entity)
        self._gate.check("tags:write", "tags.remove")
        self._gate.check(f"{resource}:write", "tags.remove")
        self._service.remove(entity, _text(record_id, "record_id", entity), _text(name, "name", "tag"))
