"""Signed-in browsers of the admin console: cookie, CSRF token, idle timeout.

The cookie holds 32 random bytes; the database keeps only their sha256, the
user, a CSRF token and when the browser was last seen, so every worker knows
every session and signing out or disabling the user ends it everywhere. The
cookie is ``HttpOnly``, ``SameSite=Strict``, limited to ``/admin``, and
``Secure`` when the request came over HTTPS (uvicorn reads ``X-Forwarded-Proto``
from the proxy) or ``CRM_CONSOLE_SECURE_COOKIE=1`` says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from crm_server.admin import team_names_of
from crm_server.auth import _aware, now
from crm_server.models import ConsoleSession, User

COOKIE = "crm_console"
#: Before sign-in there is no session: the sign-in form's CSRF token is a cookie of its own (double submit).
LOGIN_COOKIE = "crm_console_login"
PATH = "/admin"
IDLE_ENV = "CRM_CONSOLE_IDLE_MINUTES"
SECURE_ENV = "CRM_CONSOLE_SECURE_COOKIE"
MAX_AGE = timedelta(hours=12)
CONSOLE_ROLES = ("admin", "manager")


def idle_timeout() -> timedelta:
    try:
        return timedelta(minutes=float(os.environ.get(IDLE_ENV) or 30))
    except ValueError:
        return timedelta(minutes=30)


def secure_cookies(scheme: str) -> bool:
    return scheme == "https" or os.environ.get(SECURE_ENV, "").lower() in ("1", "true", "yes")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the console."""

    user_id: str
    username: str
    display_name: str
    role: str
    teams: frozenset[str]
    csrf_token: str
    token_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def scope(self) -> frozenset[str] | None:
        """The team names a manager sees; None for an admin, who sees everything."""
        return None if self.is_admin else self.teams


def open_session(session: Session, user: User) -> str:
    token = secrets.token_urlsafe(32)
    session.add(ConsoleSession(token_hash=_hash(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                               created_at=now(), last_seen_at=now()))
    return token


class SessionEnded(Exception):
    """No usable session: ``reason`` is shown on the sign-in page (or None for a plain sign-in)."""

    def __init__(self, reason: str | None):
        super().__init__(reason or "sign in")
        self.reason = reason


def load(session: Session, token: str | None) -> Viewer:
    """The viewer of a cookie, touching its idle clock; raises :class:`SessionEnded`."""
    if not token:
        raise SessionEnded(None)
    row = session.get(ConsoleSession, _hash(token))
    if row is None:
        raise SessionEnded(None)
    user = session.get(User, row.user_id)
    moment = now()
    reason = None
    if user is None or user.disabled:
        reason = "Your account is disabled: ask another admin."
    elif user.role not in CONSOLE_ROLES:
        reason = "Your account is no longer an admin or manager account."
    elif moment - _aware(row.last_seen_at) > idle_timeout():
        minutes = int(idle_timeout().total_seconds() // 60)
        reason = f"You were signed out after {minutes} minutes without activity: sign in again."
    elif moment - _aware(row.created_at) > MAX_AGE:
        reason = "Your session is more than 12 hours old: sign in again."
    if reason:
        session.delete(row)
        raise SessionEnded(reason)
    row.last_seen_at = moment
    return Viewer(user.id, user.username, user.display_name, user.role, frozenset(team_names_of(session, user.id)),
                  row.csrf_token, row.token_hash)


def close(session: Session, token_hash: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


def csrf_ok(expected: str | None, sent: str | None) -> bool:
    return bool(expected) and bool(sent) and hmac.compare_digest(str(expected), str(sent))


def set_flash(session: Session, token_hash: str, kind: str, text: str) -> None:
    row = session.get(ConsoleSession, token_hash)
    if row is not None:
        row.flash = json.dumps({"kind": kind, "text": text})


def pop_flash(session: Session, token_hash: str) -> dict | None:
    row = session.get(ConsoleSession, token_hash)
    if row is None or not row.flash:
        return None
    flash, row.flash = json.loads(row.flash), None
    return flash
