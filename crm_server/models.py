"""The server's schema as SQLAlchemy 2 models (the same tables on PostgreSQL and SQLite).

The migrations in ``crm_server/migrations`` create these tables; the models are
what the code queries with. See docs/sync-protocol.md for how the change log is
read.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_desktop.schema_naming import NAMING_CONVENTION  # the client's convention: one copy

#: A 64-bit id that is SQLite's rowid there (INTEGER PRIMARY KEY autoincrements only as INTEGER).
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Setting(Base):
    """Server-wide values every worker shares, such as the token signing key."""

    __tablename__ = "server_settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TeamMember(Base):
    """Which teams a user belongs to (a manager may lead several)."""

    __tablename__ = "team_members"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, index=True)


class Device(Base):
    """A client installation. ``last_mutation_id`` makes pushes exactly-once."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    last_mutation_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # What the device last told the server (headers of push and pull), for the admin console.
    app_version: Mapped[str | None] = mapped_column(String(50))
    protocol_version: Mapped[str | None] = mapped_column(String(10))
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_cursor: Mapped[str | None] = mapped_column(String(64))
    pending_reported: Mapped[int | None] = mapped_column(Integer)
    rejected_total: Mapped[int] = mapped_column(Integer, default=0)


class DeviceSession(Base):
    """One sign-in of a device; revoking it stops its access and refresh tokens."""

    __tablename__ = "device_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(200))


class RefreshToken(Base):
    """A refresh token, stored as its sha256 only. ``used_at`` set = rotated; a second use is theft."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("device_sessions.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: when the client showed it has this token (used it, or its pair's access token); see auth.refresh
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """Failed logins of the last minutes, read by the rate limit (shared by every worker)."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class MutationResultRow(Base):
    """The answer each applied mutation got, so a resend can be told what happened first."""

    __tablename__ = "mutation_results"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    mutation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    result: Mapped[dict] = mapped_column(JSON)


class Record(Base):
    """The current state of one synced record; ``data`` holds its fields (without scope)."""

    __tablename__ = "records"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(BigInteger)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_records_team", "team_id"), Index("ix_records_owner", "owner_id"))


class Change(Base):
    """The change log: one row per record version, or per record for one user on a scope change.

    ``xid`` is the writing transaction's id on PostgreSQL (``pg_current_xact_id()``) and
    0 on SQLite; pulls read in (xid, seq) order, only below the oldest running xid.
    ``prev_owner_id``/``prev_team_id`` are the scope before the change, so users who
    lost the record are told to ``remove`` it. ``target_user_id`` is set on rows meant
    for one user only (that user moved teams).
    """

    __tablename__ = "changes"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    xid: Mapped[int] = mapped_column(BigInteger, default=0)
    entity: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    prev_owner_id: Mapped[str | None] = mapped_column(String(36))
    prev_team_id: Mapped[str | None] = mapped_column(String(36))
    target_user_id: Mapped[str | None] = mapped_column(String(36))
    device_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_changes_order", "xid", "seq"),
        Index("ix_changes_record", "record_id", "version"),
    )


class PublishedPluginRow(Base):
    """A plugin bundle the admin published; withdrawn ones stay for the record."""

    __tablename__ = "plugins"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(50))
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[dict] = mapped_column(JSON)
    bundle: Mapped[bytes] = mapped_column(LargeBinary)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DevicePlugin(Base):
    """What a device reported about one published plugin: installed (which version) or refused (why)."""

    __tablename__ = "device_plugins"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str | None] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PushAudit(Base):
    """One pushed mutation and its outcome: the server's audit of who changed what, from which device."""

    __tablename__ = "push_audit"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    username: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(120), default="user")
    mutation_id: Mapped[int] = mapped_column(BigInteger)
    entity: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), index=True)
    fields: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)


class ConsoleSession(Base):
    """A signed-in browser of the admin console; the cookie holds a token, stored here as its sha256."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    flash: Mapped[str | None] = mapped_column(Text)


class PluginSchemaRow(Base):
    """The JSON schema of one synced plugin table (``invoicing.invoices``), as a plugin published it.

    Records of the entity are stored in ``records`` like core ones; this schema validates them
    (crm_server/plugin_data.py)."""

    __tablename__ = "plugin_schemas"
    entity: Mapped[str] = mapped_column(String(40), primary_key=True)
    plugin: Mapped[str] = mapped_column(String(100))
    plugin_version: Mapped[str] = mapped_column(String(50))
    schema: Mapped[dict] = mapped_column(JSON)
    published_by: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PluginSequenceRow(Base):
    """A gap-free counter of server-assigned numbers of plugin records (``invoicing.invoice:2026``)."""

    __tablename__ = "plugin_sequences"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
