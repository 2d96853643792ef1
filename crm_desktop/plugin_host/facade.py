"""Building one plugin's :class:`~crm_desktop.plugin_api.PluginContext` and its resources.

The context's services act as ``Actor.plugin(name)``, so every write is
audited with the plugin as the actor. ``ctx.db`` sessions join the thread's
write transaction (``ctx.transaction()`` groups them with core writes), and
run their statements under a SQLite authorizer that refuses every table not
prefixed with the plugin's name: "its own tables only" is enforced by SQLite,
not by convention.

With the runtime tripwire on, everything the facade does for a plugin (its
settings file, the keyring, ``ctx.http`` requests, ``ctx.db`` connections,
record services and their audit writes, event publishing, ``ctx.api``) runs
inside ``tripwire.core_call()``: the facade checks permissions itself, so an
honest plugin using ``ctx`` is not blocked by the tripwire. Plugin code the
core calls back from inside (an event handler) is still attributed to it.
"""

from __future__ import annotations

import base64
import builtins
import binascii
import hashlib
import json
import logging
import sqlite3
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy.orm import Session

from crm_desktop.domain.actor import Actor
from crm_desktop.domain.enums import Role
from crm_desktop.domain.records import User
from crm_desktop.domain.validation import normalize_name
from crm_desktop.errors import ValidationError
from crm_desktop.plugin_api.context import (
    ApiFacade, DbFacade, EventsFacade, HttpFacade, PluginContext, SecretsFacade, SettingsFacade, Stores,
)
from crm_desktop.plugin_api.models import table_prefix
from crm_desktop.plugin_api.paging import Page
from crm_desktop.plugin_api.records import Conversion
from crm_desktop.plugin_api.ui import UiFacade
from crm_desktop.plugin_host.manifest import Manifest
from crm_desktop.plugin_host.permissions import PermissionGate
from crm_desktop.plugin_host.settings_store import secret_service
from crm_desktop.plugin_host.tripwire import Tripwire
from crm_desktop.services.paging import ListQuery, PageKey, Sort
from crm_desktop.storage.changes import WriteSession

log = logging.getLogger(__name__)

_TABLE_ACTIONS = {
    sqlite3.SQLITE_READ: 0, sqlite3.SQLITE_UPDATE: 0, sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_DELETE: 0,
    sqlite3.SQLITE_CREATE_TABLE: 0, sqlite3.SQLITE_DROP_TABLE: 0, sqlite3.SQLITE_CREATE_INDEX: 1,
    sqlite3.SQLITE_DROP_INDEX: 1, sqlite3.SQLITE_ALTER_TABLE: 1,
}
_ALWAYS_DENIED = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA,
                  sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW}


def _core_scope(tripwire: Tripwire | None) -> Any:
    return tripwire.core_call() if tripwire is not None else nullcontext()


def _as_core(fn: Callable, tripwire: Tripwire | None) -> Callable:
    """``fn`` run as the core's own work (not attributed to the plugin on the stack)."""
    if tripwire is None:
        return fn

    def call(*args: Any, **kwargs: Any) -> Any:
        with tripwire.core_call():
            return fn(*args, **kwargs)

    return call


class CoreCalls:
    """Wraps a facade or service object so every method call runs in ``tripwire.core_call()``."""

    def __init__(self, target: Any, tripwire: Tripwire):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_tripwire", tripwire)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value) and not name.startswith("__"):
            return _as_core(value, self._tripwire)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return repr(self._target)


#: The ``ListQuery`` filters a plugin may pass, and what each entity must have for it to apply.
_COLUMN_FILTERS = ("owner_id", "status", "kind", "pipeline_id", "stage_id", "company_id", "contact_id", "deal_id",
                   "lead_id")


def accepted_filters(service: Any) -> frozenset[str]:
    """The filter names ``ctx.<records>.list`` accepts for this entity's service."""
    model = service.model
    names = {name for name in _COLUMN_FILTERS if hasattr(model, name)}
    if service.fts_table:
        names.add("text")
    if service.has_tags:
        names.add("tag")
    if hasattr(model, "done_at"):
        names.add("open_only")
    if hasattr(model, "due_at"):
        names |= {"due_before", "due_after"}
    return frozenset(names)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "dt" in value:
            return datetime.fromisoformat(value["dt"])
        if "d" in value:
            return date.fromisoformat(value["d"])
        if "dec" in value:
            return Decimal(value["dec"])
        raise ValueError("unknown key value")
    if value is not None and not isinstance(value, (str, int, float)):
        raise ValueError("unknown key value")
    return value


def _fingerprint(entity: str, sort: str, descending: bool, filters: Mapping[str, Any]) -> str:
    text = json.dumps([entity, sort, descending, sorted((k, _encode_value(v)) for k, v in filters.items())],
                      default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(fingerprint: str, key: PageKey) -> str:
    """An opaque cursor: the page key plus a fingerprint of the list it belongs to."""
    raw = json.dumps({"f": fingerprint, "k": [_encode_value(key[0]), key[1]]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: object, fingerprint: str, entity: str) -> PageKey:
    """The page key of ``cursor``; :class:`ValidationError` when it is not one of this list's cursors."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 4096:
            raise ValueError("not a cursor")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, record_id = data["k"]
        if not isinstance(record_id, str):
            raise ValueError("not a cursor")
        key = (_decode_value(value), record_id)
        found = data["f"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor", cursor, "is not a cursor from page.next_cursor", entity) from None
    if found != fingerprint:
        raise ValidationError("cursor", cursor, "belongs to a list with other filters or another sort "
                                                "(pass the same sort, descending and filters as for the first page)",
                              entity)
    return key


class ServiceRecords:
    """:class:`~crm_desktop.plugin_api.data.RecordStore` over one entity's service.

    Turns the facade's plain ``list`` arguments into the service's query objects (and its page
    keys into opaque cursors), so the plugin API itself never imports :mod:`crm_desktop.services`.
    ``services()`` gives the services to act through now (the plugin's, or an agent's inside
    ``ctx.acting_as_agent``); ``attribute`` names this entity's service on them.
    """

    def __init__(self, services: Callable[[], Any], attribute: str):
        self._services = services
        self._attribute = attribute
        service = self._service
        self._entity = service.entity
        self._filters = accepted_filters(service)

    @property
    def _service(self) -> Any:
        return getattr(self._services(), self._attribute)

    def _query(self, filters: Mapping[str, Any]) -> ListQuery:
        for name, value in filters.items():
            if name not in self._filters:
                raise ValidationError(name, value, f"is not a filter of {self._attribute} "
                                                    f"(filters: {', '.join(sorted(self._filters))})", self._entity)
            if value is None:
                continue
            if name == "open_only" and not isinstance(value, bool):
                raise ValidationError(name, value, "must be True or False", self._entity)
            if name in ("due_before", "due_after") and not isinstance(value, datetime):
                raise ValidationError(name, value, "must be a datetime", self._entity)
            if name not in ("open_only", "due_before", "due_after") and not isinstance(value, str):
                raise ValidationError(name, value, "must be a text", self._entity)
        return ListQuery(**filters)

    def get(self, record_id: str) -> Any:
        return self._service.get(record_id)

    def list(self, *, limit: int, cursor: str | None, sort: str | None, descending: bool,
             filters: Mapping[str, Any]) -> Page[Any]:
        service = self._service
        query = self._query(filters)
        sort_key = sort if sort is not None else next(iter(service.sort_keys))
        if sort_key not in service.sort_keys:
            raise ValidationError("sort", sort_key, f"must be one of {', '.join(service.sort_keys)}", self._entity)
        fingerprint = _fingerprint(self._entity, sort_key, bool(descending), filters)
        after = decode_cursor(cursor, fingerprint, self._entity) if cursor is not None else None
        page = service.list(query, Sort(sort_key, bool(descending)), after=after, limit=limit)
        next_cursor = encode_cursor(fingerprint, page.last_key) if page.has_more and page.last_key else None
        return Page(page.items, next_cursor)

    def count(self, filters: Mapping[str, Any]) -> int:
        return int(self._service.count(self._query(filters)))

    def search(self, text: str, limit: int) -> builtins.list[Any]:  # `list` here is the method above
        if not self._service.fts_table and self._attribute != "users":
            raise ValidationError("text", text, f"{self._attribute} cannot be searched; use list()", self._entity)
        return list(self._service.search(text, limit=limit))

    def aggregate(self, *, group_by: builtins.list[str], measures: Mapping[str, str],
                  filters: Mapping[str, Any]) -> builtins.list[dict]:
        return self._service.aggregate(group_by=group_by, measures=measures, filters=dict(filters))

    def create(self, **fields: Any) -> Any:
        return self._service.create(**fields)

    def update(self, record_id: str, **fields: Any) -> Any:
        return self._service.update(record_id, **fields)

    def delete(self, record_id: str) -> None:
        self._service.delete(record_id)


class DealRecords(ServiceRecords):
    """Deals: the record verbs plus moving through the pipeline."""

    def move_to_stage(self, deal_id: str, stage_id: str) -> Any:
        return self._service.move_to_stage(deal_id, stage_id)

    def win(self, deal_id: str) -> Any:
        return self._service.win(deal_id)

    def lose(self, deal_id: str, reason: str | None) -> Any:
        return self._service.lose(deal_id, reason)


class ActivityRecords(ServiceRecords):
    """Activities: the record verbs plus log, schedule and complete."""

    def log(self, kind: str, subject: str, fields: Mapping[str, Any]) -> Any:
        return self._service.log(kind, subject, **fields)

    def schedule(self, kind: str, subject: str, due_at: datetime, fields: Mapping[str, Any]) -> Any:
        return self._service.schedule(kind, subject, due_at, **fields)

    def complete(self, activity_id: str, outcome: str | None) -> Any:
        return self._service.complete(activity_id, outcome)


class LeadRecords(ServiceRecords):
    """Leads: the record verbs plus conversion."""

    def convert(self, lead_id: str, *, create_deal: bool, deal_name: str | None, amount: Any) -> Conversion:
        services = self._services()
        result = services.leads.convert(lead_id, create_deal=create_deal, deal_title=deal_name, amount=amount)

        def read(service: Any, record_id: str | None) -> Any:
            return service.find(record_id) if record_id else None

        return Conversion(lead=result.lead, contact=read(services.contacts, result.contact_id),
                          company=read(services.companies, result.company_id),
                          deal=read(services.deals, result.deal_id), company_created=result.company_created)


class UserRecords(ServiceRecords):
    """Users: the record verbs plus the signed-in user."""

    def __init__(self, services: Callable[[], Any], attribute: str, current: Callable[[], User]):
        super().__init__(services, attribute)
        self.current = current


class PipelineRecords:
    """:class:`~crm_desktop.plugin_api.data.PipelineStore` over the pipeline service."""

    def __init__(self, services: Callable[[], Any]):
        self._services = services

    def pipelines(self) -> list[Any]:
        return list(self._services().pipelines.all())

    def stages(self, pipeline_id: str) -> list[Any]:
        services = self._services()
        services.pipelines.get(pipeline_id)  # NotFound if there is no such pipeline
        return list(services.pipelines.stages(pipeline_id))


class TagRecords:
    """:class:`~crm_desktop.plugin_api.data.TagStore`: tagging goes through the tagged record's service
    (an update of its ``tags``), so it is validated, audited and synced like any other edit."""

    def __init__(self, services: Callable[[], Any]):
        self._services = services

    def all(self) -> list[Any]:
        return list(self._services().tags.all())

    def of(self, entity: str, record_id: str) -> list[Any]:
        record = self._services().entity_service(entity).get(record_id)
        keys = {normalize_name(n) for n in record.tags}
        return [t for t in self.all() if normalize_name(t.name) in keys]

    def add(self, entity: str, record_id: str, name: str) -> None:
        service = self._services().entity_service(entity)
        record = service.get(record_id)
        if normalize_name(name) not in {normalize_name(n) for n in record.tags}:
            service.update(record_id, tags=[*record.tags, name])

    def remove(self, entity: str, record_id: str, name: str) -> None:
        service = self._services().entity_service(entity)
        record = service.get(record_id)
        key = normalize_name(name)
        kept = [n for n in record.tags if normalize_name(n) != key]
        if len(kept) != len(record.tags):
            service.update(record_id, tags=kept)


#: (plugin, model) while a plugin's code runs inside ``ctx.acting_as_agent(model)`` (this thread or
#: the ``ctx.ui.run_in_background`` work it started, which copies the context)
_ACTING_AGENT: ContextVar[tuple[str, str] | None] = ContextVar("crm_acting_agent", default=None)


def current_user(services: Any, role: Callable[[], Any]) -> User:
    """The signed-in user's record (not signed in, or not synced yet: one made from the account;
    not signed in at all: the local user, id ``local``)."""
    actor = services.actor
    users = services.users
    found = users.find(actor.user_id) if actor.user_id else None
    if found is None and actor.user_id:
        found = users.by_username(actor.name)
    if found is not None:
        return found
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return User(id=actor.user_id or "local", created_at=epoch, updated_at=epoch, version=0, deleted_at=None,
                owner_id=None, team_id=actor.team_id, username=actor.name, display_name=actor.name, role=Role(role()))


def _wrapped(target: Any, tripwire: Tripwire | None) -> Any:
    return target if tripwire is None else CoreCalls(target, tripwire)


class PluginDatabase:
    """A plugin's sessions on the app database, limited to its tables.

    Each session is bound to the connection of the thread's one write transaction (opening it
    when none is open), so a plugin's own rows and the core records it writes through the
    facade commit or roll back together. While the plugin's session runs its statements, a
    SQLite authorizer on that connection refuses every table not prefixed with its name; the
    core's own work inside the block (``ctx.contacts.create``) runs unguarded.
    """

    def __init__(self, db: Any, plugin: str, actor: Actor, tripwire: Tripwire | None = None):
        self.tripwire = tripwire
        self.plugin = plugin
        self.prefix = table_prefix(plugin)
        self.denied_table: str | None = None
        self._db = db
        self._actor = actor

    def _authorize(self, action, arg1, arg2, db_name, trigger):
        if action in _ALWAYS_DENIED:
            self.denied_table = f"<{'pragma' if action == sqlite3.SQLITE_PRAGMA else 'schema'} {arg1}>"
            return sqlite3.SQLITE_DENY
        index = _TABLE_ACTIONS.get(action)
        if index is None:
            return sqlite3.SQLITE_OK
        table = arg1 if index == 0 else arg2
        if table is None or table.startswith((self.prefix, "sqlite_")) or trigger is not None:
            return sqlite3.SQLITE_OK
        self.denied_table = table
        return sqlite3.SQLITE_DENY

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.denied_table = None
        with _core_scope(self.tripwire):
            scope_cm = self._db.transaction(actor=self._actor)
            scope = scope_cm.__enter__()
        try:
            # a savepoint of its own inside the scope: its failure leaves the core's work in the scope alone
            # a WriteSession of this transaction: a synced plugin model's rows are stamped and their
            # changes recorded (audit, sync outbox) by the same before_flush as core records
            session = WriteSession(bind=scope.connection, join_transaction_mode="create_savepoint",
                                   expire_on_commit=False, info={"write_transaction": scope.tx})
            try:
                with scope.tx.guarded(self._authorize), session.begin():
                    yield session
            finally:
                session.close()
        except BaseException as exc:
            with _core_scope(self.tripwire):
                scope_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with _core_scope(self.tripwire):
            scope_cm.__exit__(None, None, None)

    def dispose(self) -> None:
        """Nothing to release: the sessions use the app's write connection."""


@dataclass
class ContextResources:
    """What a context holds that must be released on unload."""

    gate: PermissionGate
    http: HttpFacade
    database: PluginDatabase
    subscriptions: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for unsubscribe in self.subscriptions:
            try:
                unsubscribe()
            except Exception:
                log.exception("removing an event subscription failed")
        self.subscriptions.clear()
        self.http.close()
        self.database.dispose()


def build_context(*, manifest: Manifest, services: Any, db_path: Path, data_dir: Path,
                  policy_permits: Callable[[str], bool], role: Callable[[], Any],
                  publish: Callable[[str, str, dict], None],
                  subscribe: Callable[[str, str, Callable], Callable[[], None]],
                  read_settings: Callable[[], dict], write_setting: Callable[[str, Any], None],
                  api_client: Any = None, tripwire: Tripwire | None = None,
                  add_disposer: Callable[[Callable[[], object]], None] | None = None,
                  ui: Callable[[], UiFacade | None] | None = None,
                  ) -> tuple[PluginContext, ContextResources]:
    """The facade for one plugin and the resources to release when it unloads.

    ``tripwire``: the process tripwire the plugin is registered with (None: off);
    the facade's own I/O then runs in its ``core_call()``. ``add_disposer`` takes the
    plugin's ``ctx.on_dispose`` callbacks; ``ui()`` gives its ``ctx.ui`` (None: no window).
    """
    name = manifest.name
    plugin_services = services.as_actor(Actor.plugin(name))
    declared = frozenset(manifest.permissions) | frozenset(manifest.provides.permissions)
    gate = PermissionGate(name, declared, policy_permits, role, audit=_as_core(
        lambda actor, action, details: services.audit.write(actor, action, details=details), tripwire))
    http = HttpFacade(name, tuple(manifest.network.hosts), gate)
    database = PluginDatabase(services.db, name, Actor.plugin(name), tripwire)
    resources = ContextResources(gate=gate, http=http, database=database)

    def _subscribe(event_name: str, handler: Callable) -> Callable[[], None]:
        unsubscribe = subscribe(name, event_name, handler)
        resources.subscriptions.append(unsubscribe)
        return unsubscribe

    with _core_scope(tripwire):
        data_dir.mkdir(parents=True, exist_ok=True)
    agents: dict[tuple[str, Actor], Any] = {}

    def services_now() -> Any:
        """The plugin's services, or an agent's inside ``ctx.acting_as_agent`` (on behalf of the user)."""
        acting = _ACTING_AGENT.get()
        if acting is None or acting[0] != name:
            return plugin_services
        key = (acting[1], services.actor)
        agent_services = agents.get(key)
        if agent_services is None:
            user = current_user(services, role)
            actor = services.actor
            agent_services = services.as_actor(Actor.agent(acting[1], user_id=actor.user_id,
                                                           on_behalf_of=user.username, team_id=actor.team_id))
            agents[key] = agent_services
        return agent_services

    @contextmanager
    def acting_as_agent(model: str) -> Iterator[None]:
        token = _ACTING_AGENT.set((name, model))
        try:
            yield
        finally:
            _ACTING_AGENT.reset(token)

    stores = Stores(
        contacts=_wrapped(ServiceRecords(services_now, "contacts"), tripwire),
        companies=_wrapped(ServiceRecords(services_now, "companies"), tripwire),
        leads=_wrapped(LeadRecords(services_now, "leads"), tripwire),
        deals=_wrapped(DealRecords(services_now, "deals"), tripwire),
        activities=_wrapped(ActivityRecords(services_now, "activities"), tripwire),
        users=_wrapped(UserRecords(services_now, "users", lambda: current_user(services, role)), tripwire),
        pipelines=_wrapped(PipelineRecords(services_now), tripwire),
        tags=_wrapped(TagRecords(services_now), tripwire),
    )
    ctx = PluginContext(
        name=name, version=manifest.version, data_dir=data_dir, gate=gate, records=stores,
        agent=acting_as_agent, on_dispose=add_disposer, ui=ui,
        events=EventsFacade(name, _as_core(lambda n, p: publish(name, n, p), tripwire), _subscribe),
        settings=SettingsFacade(_as_core(read_settings, tripwire), _as_core(write_setting, tripwire)),
        secrets=_wrapped(SecretsFacade(secret_service(name)), tripwire),
        http=_wrapped(http, tripwire), api=_wrapped(ApiFacade(name, gate, api_client), tripwire),
        db=DbFacade(name, _as_core(database.session, tripwire), lambda: database.denied_table, gate),
        allowed=gate.allowed,
    )
    return ctx, resources
