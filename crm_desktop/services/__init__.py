"""Use cases over storage: the only way the UI, the CLI, sync and plugins touch data.

:class:`CrmServices` bundles one service per entity, sharing the database,
the event bus and the change listeners. ``services.as_actor(actor)`` gives the
same services acting for someone else (a plugin, the AI agent), so every
audit entry names who did it.
"""

from __future__ import annotations

from typing import Any

from crm_desktop.domain.actor import LOCAL_USER, Actor
from crm_desktop.services.activities import ActivityService
from crm_desktop.services.audit import AuditLog
from crm_desktop.services.companies import CompanyService
from crm_desktop.services.contacts import ContactService
from crm_desktop.services.deals import DealService
from crm_desktop.services.duplicates import DuplicateFinder
from crm_desktop.services.entity import EntityService
from crm_desktop.services.events import Event, EventBus
from crm_desktop.services.leads import LeadService
from crm_desktop.services.merge import MergeService
from crm_desktop.services.paging import ListQuery, Page, Sort
from crm_desktop.services.pipelines import PipelineService, StageService
from crm_desktop.services.search import SearchHit, SearchService
from crm_desktop.services.tags import TagService
from crm_desktop.services.unit_of_work import Change, ChangeListener, UnitOfWork, install_sinks
from crm_desktop.services.users import UserService
from crm_desktop.storage.engine import Database

__all__ = ["CrmServices", "Event", "EventBus", "ListQuery", "Page", "Sort", "SearchHit", "Change", "UnitOfWork"]


class CrmServices:
    def __init__(self, db: Database, *, actor: Actor = LOCAL_USER, events: EventBus | None = None,
                 change_listeners: list[ChangeListener] | None = None, phone_region: str | None = None):
        self.db = db
        #: the country of phone numbers written without one (duplicate keys); see user_settings
        self.phone_region = phone_region
        self.actor = actor
        self.events = events if events is not None else EventBus()
        #: called inside every write transaction with each batch of changes (sync's outbox hooks in here)
        self.change_listeners: list[ChangeListener] = change_listeners if change_listeners is not None else []
        install_sinks(db, self.change_listeners)  # services.as_actor(...) shares its parent's list
        self.companies = CompanyService(self)
        self.contacts = ContactService(self)
        self.leads = LeadService(self)
        self.deals = DealService(self)
        self.activities = ActivityService(self)
        self.pipelines = PipelineService(self)
        self.stages = StageService(self)
        self.tags = TagService(self)
        self.users = UserService(self)
        self.audit = AuditLog(self)
        self.search = SearchService(self)
        self.duplicates = DuplicateFinder(self)
        self.merge = MergeService(self)

    def as_actor(self, actor: Actor) -> "CrmServices":
        """The same services, recording ``actor`` on every change."""
        return CrmServices(self.db, actor=actor, events=self.events, change_listeners=self.change_listeners,
                           phone_region=self.phone_region)

    def unit_of_work(self, *, audit_action: str | None = None) -> UnitOfWork:
        """A write transaction: ``with services.unit_of_work() as uow: ...``; inside an open one, a
        savepoint of it. ``audit_action`` names the audit entries of its changes (default: the op)."""
        return UnitOfWork(self.db, self.actor, self.events, audit_action=audit_action)

    def entity_service(self, entity: str) -> EntityService[Any, Any]:
        """The service for an entity name (``contact``, ``deal``, ...)."""
        services: dict[str, EntityService[Any, Any]] = {  # one per entity, each with its own model and record
            "company": self.companies, "contact": self.contacts, "lead": self.leads, "deal": self.deals,
                    "activity": self.activities, "pipeline": self.pipelines, "stage": self.stages,
            "tag": self.tags, "user": self.users}
        try:
            return services[entity]
        except KeyError:
            raise ValueError(f"unknown entity {entity!r}") from None
