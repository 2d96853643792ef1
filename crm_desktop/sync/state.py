"""Sync's own state in the local database (``sync_state``, key/value).

The account a home is bound to (server URL, user id and name, role, teams), the
device id made once for the life of the home, the pull cursor, and the outcome
of the last sync. Kept in the database, never in a plain file next to it, so a
backup or a restore of the database carries its own sync position; secrets are
never kept here (they live in the OS keyring, :mod:`crm_desktop.auth`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_desktop.errors import CrmError
from crm_desktop.sync.protocol_base import START_CURSOR

if TYPE_CHECKING:
    from crm_desktop.domain.actor import Actor

CURSOR = "cursor"
DEVICE_ID = "device_id"
ACCOUNT = "account"
LAST_SYNC = "last_sync"


class AccountMismatch(CrmError):
    """This home is bound to another server or account."""


@dataclass(frozen=True)
class Account:
    """Who this home syncs as, and with which server."""

    server_url: str
    user_id: str
    username: str
    role: str = "rep"
    teams: tuple[str, ...] = field(default_factory=tuple)
    display_name: str = ""

    @property
    def team_id(self) -> str | None:
        return self.teams[0] if self.teams else None

    def to_json(self) -> str:
        return json.dumps({"server_url": self.server_url, "user_id": self.user_id, "username": self.username,
                           "role": self.role, "teams": list(self.teams), "display_name": self.display_name})

    @classmethod
    def from_json(cls, text: str) -> "Account":
        data = json.loads(text)
        return cls(data["server_url"], data["user_id"], data["username"], data.get("role", "rep"),
                   tuple(data.get("teams", ())), data.get("display_name", ""))


def normalize_server_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CrmError(f"server URL {url!r} must start with https:// (or http:// on a trusted network)")
    return url


def get(conn, key: str) -> str | None:
    """A value, read on a DBAPI connection (inside or outside a transaction)."""
    row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def put(conn, key: str, value: str | None) -> None:
    """Set a value; call inside the write transaction it belongs to (the cursor with its page)."""
    conn.execute("INSERT INTO sync_state (key, value) VALUES (?, ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def cursor(conn) -> str:
    return get(conn, CURSOR) or START_CURSOR


def account(conn) -> Account | None:
    text = get(conn, ACCOUNT)
    return Account.from_json(text) if text else None


def actor_for(db) -> "Actor | None":
    """The signed-in account of ``db`` (a :class:`~crm_desktop.storage.engine.Database`) as the
    actor of local writes (owner and team of new records), or None when no one signed in."""
    from crm_desktop.domain.actor import Actor

    with db.read_connection() as c:
        signed_in = account(c.connection.driver_connection)
    if signed_in is None:
        return None
    return Actor.user(signed_in.username, signed_in.user_id, signed_in.team_id)


def last_sync(conn) -> dict[str, Any] | None:
    text = get(conn, LAST_SYNC)
    return json.loads(text) if text else None


def device_id(db) -> str:
    """This home's device id, made on first use (a UUID) and kept for the life of the database."""
    with db.read_connection() as c:
        existing = get(c.connection.driver_connection, DEVICE_ID)
    if existing:
        return existing
    with db.transaction(replicate=False) as scope:
        conn = scope.tx.dbapi_connection
        existing = get(conn, DEVICE_ID)
        if existing:
            return existing
        made = str(uuid.uuid4())
        put(conn, DEVICE_ID, made)
        return made


def check_binding(current: Account | None, server_url: str, username: str) -> None:
    """Refuse to sign this home in to another server or as another user (no mixing of data)."""
    if current is None:
        return
    if current.server_url != server_url:
        raise AccountMismatch(
            f"this home syncs with {current.server_url} as {current.username}; it cannot sign in to "
            f"{server_url}: use another --home for another server")
    if current.username != username:
        raise AccountMismatch(
            f"this home belongs to {current.username} on {current.server_url}; it cannot sign in as "
            f"{username}: use another --home for another account")
