"""The core schema as SQLAlchemy 2 models.

Full-text search tables and their triggers are created by the migrations
(``migrations/versions``) in SQL, because SQLAlchemy has no notion of FTS5;
see :mod:`crm_desktop.storage.fts`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_desktop.storage.base import Base, SyncedRow, UTCDateTime, utcnow


def _tag_table(entity_table: str, fk_column: str) -> Table:
    return Table(
        f"{entity_table[:-1] if entity_table != 'companies' else 'company'}_tags",
        Base.metadata,
        Column(fk_column, String(36), ForeignKey(f"{entity_table}.id", ondelete="CASCADE"), primary_key=True),
        Column("tag_id", String(36), ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    )


company_tags = _tag_table("companies", "company_id")
contact_tags = _tag_table("contacts", "contact_id")
lead_tags = _tag_table("leads", "lead_id")
deal_tags = _tag_table("deals", "deal_id")


class User(SyncedRow):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20), default="rep")


class Tag(SyncedRow):
    __tablename__ = "tags"
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[str | None] = mapped_column(String(20))


class TaggedRow(SyncedRow):
    """An entity with tags (companies, contacts, leads, deals); each model maps ``tags`` over its
    own link table, so here it is only declared for the type checker. Abstract: it has no table."""

    __abstract__ = True
    if TYPE_CHECKING:
        tags: Mapped[list[Tag]]


class Company(TaggedRow):
    __tablename__ = "companies"
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str | None] = mapped_column(String(300), index=True)
    website: Mapped[str | None] = mapped_column(String(300))
    industry: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    street: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)

    tags: Mapped[list[Tag]] = relationship(secondary=company_tags, lazy="selectin")
    __table_args__ = (Index("ix_companies_live_name", "name_key", "id", sqlite_where=text("deleted_at IS NULL")),)


class Contact(TaggedRow):
    __tablename__ = "contacts"
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    name_key: Mapped[str | None] = mapped_column(String(250))
    email: Mapped[str | None] = mapped_column(String(254))
    email_key: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    phone_key: Mapped[str | None] = mapped_column(String(20), index=True)
    mobile: Mapped[str | None] = mapped_column(String(40))
    mobile_key: Mapped[str | None] = mapped_column(String(20), index=True)
    job_title: Mapped[str | None] = mapped_column(String(150))
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))  # indexed by ix_contacts_company_name
    street: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)

    company: Mapped[Company | None] = relationship(lazy="joined")
    tags: Mapped[list[Tag]] = relationship(secondary=contact_tags, lazy="selectin")
    __table_args__ = (
        Index("ix_contacts_live_name", "name_key", "id", sqlite_where=text("deleted_at IS NULL")),
        Index("ix_contacts_company_name", "company_id", "name_key"),
        Index("ix_contacts_updated", "updated_at", "id"),
    )


class Lead(TaggedRow):
    __tablename__ = "leads"
    title: Mapped[str] = mapped_column(String(300))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    source: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    converted_contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id"))
    converted_company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"))
    converted_deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"))

    tags: Mapped[list[Tag]] = relationship(secondary=lead_tags, lazy="selectin")
    __table_args__ = (
        Index("ix_leads_live_title", "title", "id", sqlite_where=text("deleted_at IS NULL")),
        # leads by source in a date range (reporting; migration 0010)
        Index("ix_leads_live_created", "created_at", "source", "owner_id", "team_id", "deleted_at",
              sqlite_where=text("deleted_at IS NULL")),
    )


class Pipeline(SyncedRow):
    __tablename__ = "pipelines"
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    stages: Mapped[list["Stage"]] = relationship(back_populates="pipeline", order_by="Stage.position")


class Stage(SyncedRow):
    __tablename__ = "stages"
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    probability: Mapped[int] = mapped_column(Integer, default=0)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    is_lost: Mapped[bool] = mapped_column(Boolean, default=False)

    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")


class Deal(TaggedRow):
    __tablename__ = "deals"
    title: Mapped[str] = mapped_column(String(300))
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"))
    stage_id: Mapped[str] = mapped_column(ForeignKey("stages.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"), index=True)
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    expected_close: Mapped[date | None] = mapped_column(Date)
    stage_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)

    company: Mapped[Company | None] = relationship(lazy="joined")
    stage: Mapped[Stage] = relationship(lazy="joined")
    tags: Mapped[list[Tag]] = relationship(secondary=deal_tags, lazy="selectin")
    __table_args__ = (
        Index("ix_deals_live_title", "title", "id", sqlite_where=text("deleted_at IS NULL")),
        # the reporting aggregates read only these columns (migration 0010)
        Index("ix_deals_live_reporting", "status", "stage_id", "pipeline_id", "currency", "expected_close",
              "amount_cents", "owner_id", "team_id", "stage_changed_at", "created_at", "deleted_at",
              sqlite_where=text("deleted_at IS NULL")),
    )


class Activity(SyncedRow):
    __tablename__ = "activities"
    kind: Mapped[str] = mapped_column(String(10), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    location: Mapped[str | None] = mapped_column(String(300))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"), index=True)
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"), index=True)
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id"), index=True)
    __table_args__ = (
        Index("ix_activities_due", "due_at", "id"),
        # open activities by due date, and done ones by date, owner and team (reporting; migration 0010)
        Index("ix_activities_live_done_due", "done_at", "due_at", "owner_id", "team_id", "deleted_at",
              sqlite_where=text("deleted_at IS NULL")),
    )


class AuditEntry(Base):
    """One change (or one denied attempt): who, what, when. Never synced, never edited."""

    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_kind: Mapped[str] = mapped_column(String(10))
    actor_name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(30))
    entity: Mapped[str | None] = mapped_column(String(30))
    record_id: Mapped[str | None] = mapped_column(String(36))
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    #: the user an ``agent`` actor acted for (NULL for every other actor)
    on_behalf_of: Mapped[str | None] = mapped_column(String(100))
    __table_args__ = (Index("ix_audit_entries_record", "entity", "record_id"),)


class AuditEntryRecord(Base):
    """A record one bulk audit entry covers (an import's chunk: one entry, one row here per record).

    A bulk insert is audited as one :class:`AuditEntry` (``record_id`` NULL, ``changes`` naming
    the batch) plus one row here per created record, so "who created record X and when" is an
    index lookup (``services.audit.AuditLog.created``) without a JSON entry per record.
    WITHOUT ROWID: the primary key is the only index, and new UUIDv7 ids append to it.
    """

    __tablename__ = "audit_entry_records"
    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("audit_entries.id", ondelete="CASCADE"), primary_key=True)
    __table_args__ = {"sqlite_with_rowid": False}


#: entity name -> ORM model
MODELS: dict[str, type[SyncedRow]] = {
    "company": Company,
    "contact": Contact,
    "lead": Lead,
    "deal": Deal,
    "activity": Activity,
    "pipeline": Pipeline,
    "stage": Stage,
    "tag": Tag,
    "user": User,
}

#: table name -> entity name
ENTITY_OF_TABLE: dict[str, str] = {model.__tablename__: entity for entity, model in MODELS.items()}


# -- sync bookkeeping (local only, never synced) ---------------------------------------------


class OutboxMutation(Base):
    """One local change waiting to be pushed (DESIGN.md, Sync: the outbox).

    Written by the sync outbox writer in the same transaction as the change. ``id`` is the
    protocol's ``mutation_id``: AUTOINCREMENT never reuses an id, so ids increase per device
    for the life of the database. ``status`` is ``pending`` until the server answered;
    a ``rejected`` one stays (with the server's reason) for the rep to resend or discard.
    """

    __tablename__ = "sync_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(30))
    record_id: Mapped[str] = mapped_column(String(36))
    op: Mapped[str] = mapped_column(String(10))
    #: JSON object: field -> [base, new], protocol values; JSON ``null`` on a ``create`` a bulk insert
    #: wrote: the record's values are read when the mutation is read (sync/outbox.py, "compact creates")
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    base_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    reason: Mapped[str | None] = mapped_column(String(30))
    message: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        Index("ix_sync_outbox_status", "status", "id"),
        Index("ix_sync_outbox_record", "record_id"),
        {"sqlite_autoincrement": True},
    )


class SyncConflict(Base):
    """A change the server could not merge, kept until the rep resolves it (keep mine / take theirs)."""

    __tablename__ = "sync_conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(30))
    record_id: Mapped[str] = mapped_column(String(36), index=True)
    #: fields | deleted | edited (protocol ConflictKind)
    kind: Mapped[str] = mapped_column(String(10))
    #: JSON list of {field, base, mine, theirs}
    fields: Mapped[list] = mapped_column(JSON, default=list)
    #: the server's record as the answer showed it (null when deleted there)
    theirs: Mapped[dict | None] = mapped_column(JSON)
    version: Mapped[int | None] = mapped_column(Integer)
    mutation_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncStateEntry(Base):
    """Key/value state of sync: the account this home is bound to, the device id, the pull cursor."""

    __tablename__ = "sync_state"
    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)


class SyncPluginTable(Base):
    """A synced plugin table sync knows (crm_desktop/storage/plugin_sync.py): entity, table, schema."""

    __tablename__ = "sync_plugin_tables"
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    plugin: Mapped[str] = mapped_column(String(100))
    table_name: Mapped[str] = mapped_column(String(100))
    #: JSON: {entity, plugin, table, plugin_version, schema}
    spec: Mapped[str] = mapped_column(Text)


class SyncParkedChange(Base):
    """A pulled change of a plugin entity not known here yet, applied when the plugin publishes it."""

    __tablename__ = "sync_parked_changes"
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    #: the PulledChange as JSON
    change: Mapped[str] = mapped_column(Text)
