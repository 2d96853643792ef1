"""Declarative base, naming convention and the columns every synced row has."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Integer, MetaData, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_desktop.domain.ids import uuid7
from crm_desktop.schema_naming import NAMING_CONVENTION  # noqa: F401  (re-exported: storage users import it from here)



def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite stores naive text)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SyncColumns:
    """The columns of DESIGN.md, Data: every synced row has them."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=uuid7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    #: the server's version of the row; 0 = never synced. Only sync changes it.
    version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    #: local write counter: 1 when made here, +1 on every local write (storage/changes.py)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class SyncedRow(SyncColumns, Base):
    """A mapped table with the sync columns: every entity model (``models.py``) is one, and the
    entity services (``services/entity.py``) are generic over it. Abstract: it has no table."""

    __abstract__ = True


SYNC_COLUMN_NAMES = ("id", "created_at", "updated_at", "version", "revision", "deleted_at", "owner_id", "team_id")
