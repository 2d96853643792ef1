"""Passwords, tokens and device sessions.

- Passwords: argon2id (argon2-cffi), re-hashed on login when the parameters change.
- Access tokens: short-lived (15 minutes), HMAC-SHA256 signed with a key kept in
  the database, so every worker and host accepts every other's tokens. Each
  request still looks up its session and user, so revoking a device or
  disabling a user takes effect on the very next request.
- Refresh tokens: 32 random bytes, stored as sha256, single use. Refreshing
  marks the old one used and answers a new one; presenting a used one again
  means it was copied, so the whole device session is revoked (RFC 6819 §5.2.2.3,
  "refresh token rotation"). One exception keeps a crashed client signed in: if the
  pair answered to that refresh never reached the client (neither its access token
  nor its refresh token was ever used — ``received_at`` is unset), the old token may
  be presented again within :data:`REFRESH_RETRY_WINDOW`; the unreceived pair is
  dropped and a new one answered. A client killed between the answer and saving it
  to the keyring is thus not signed out, while a copied token still is as soon as
  the rightful client has used its new pair.
- Login rate limit: failures of the last minute per user name and per address,
  in the database so all workers share the count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_desktop.domain.ids import uuid7
from crm_server.models import Device, DeviceSession, LoginFailure, RefreshToken, Setting, TeamMember, User

log = logging.getLogger(__name__)

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=60)
#: How long a rotated refresh token may be presented again when the pair answered for it never arrived.
REFRESH_RETRY_WINDOW = timedelta(days=1)
LOGIN_WINDOW = timedelta(minutes=1)
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 30
_SIGNING_KEY = "token_signing_key"

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AuthError(Exception):
    """Refused: ``code`` is the protocol's error code, the message one sentence for a person."""

    def __init__(self, code: str, message: str, status: int = 401, retry_after: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def signing_key(session: Session) -> bytes:
    """The token signing key, made on first use and shared by every worker through the database."""
    row = session.get(Setting, _SIGNING_KEY)
    if row is None:
        try:
            with session.begin_nested():
                session.add(Setting(key=_SIGNING_KEY, value=secrets.token_urlsafe(48)))
        except IntegrityError:
            pass  # another worker made it first
        row = session.get(Setting, _SIGNING_KEY)
    return row.value.encode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_access_token(key: bytes, session_id: str, user_id: str, ttl: timedelta = ACCESS_TTL,
                      pair: str | None = None) -> str:
    """A signed access token; ``pair`` is the hash of the refresh token answered with it (claim ``rt``)."""
    claims = {"sid": session_id, "sub": user_id, "exp": int(time.time() + ttl.total_seconds())}
    if pair:
        claims["rt"] = pair
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())
    return f"v1.{payload}.{mac}"


def read_access_token(key: bytes, token: str) -> dict:
    try:
        version, payload, mac = token.split(".")
        expected = _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())
        if version != "v1" or not hmac.compare_digest(mac, expected):
            raise ValueError
        claims = json.loads(_unb64(payload))
    except (ValueError, UnicodeError, json.JSONDecodeError):
        raise AuthError("unauthorized", "the access token is not valid: sign in again") from None
    if claims.get("exp", 0) < time.time():
        raise AuthError("token_expired", "the access token has expired: refresh it")
    return claims


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, their role and teams, and the device session."""

    user_id: str
    username: str
    display_name: str
    role: str
    teams: tuple[str, ...]
    device_id: str
    session_id: str
    #: the refresh token hash of this access token's pair, when the server has not yet seen it arrive
    unreceived_pair: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def user_teams(session: Session, user_id: str) -> tuple[str, ...]:
    return tuple(sorted(session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))))


def principal_for_token(session: Session, token: str) -> Principal:
    """Check an access token and that its session and user still may sync (every request)."""
    claims = read_access_token(signing_key(session), token)
    row = session.execute(
        select(DeviceSession, User).join(User, User.id == DeviceSession.user_id)
        .where(DeviceSession.id == claims.get("sid"))
    ).first()
    if row is None:
        raise AuthError("unauthorized", "this device session does not exist: sign in again")
    dev_session, user = row
    if dev_session.revoked_at is not None:
        raise AuthError("session_revoked", f"this device was signed out ({dev_session.revoked_reason}): sign in again")
    if user.disabled:
        raise AuthError("user_disabled", f"the account {user.username!r} is disabled: ask an admin", status=403)
    pair = claims.get("rt")
    unreceived = None
    if isinstance(pair, str):
        token_row = session.get(RefreshToken, pair)
        if token_row is not None and token_row.received_at is None:
            unreceived = pair
    return Principal(user.id, user.username, user.display_name, user.role, user_teams(session, user.id),
                     dev_session.device_id, dev_session.id, unreceived)


def mark_pair_received(session: Session, pair: str) -> None:
    """The client used this pair's access token: it has the pair, so its old token may not come back."""
    session.execute(update(RefreshToken).where(RefreshToken.token_hash == pair, RefreshToken.received_at.is_(None))
                    .values(received_at=now()))


def _check_rate_limit(session: Session, username: str, address: str) -> None:
    since = now() - LOGIN_WINDOW
    session.execute(delete(LoginFailure).where(LoginFailure.at < since - LOGIN_WINDOW))
    by_user = session.scalar(select(func.count()).where(LoginFailure.username == username, LoginFailure.at >= since))
    by_address = session.scalar(select(func.count()).where(LoginFailure.address == address, LoginFailure.at >= since))
    if by_user >= MAX_FAILURES_PER_USER or by_address >= MAX_FAILURES_PER_ADDRESS:
        raise AuthError("rate_limited", "too many failed sign-ins: wait a minute and try again",
                        status=429, retry_after=int(LOGIN_WINDOW.total_seconds()))


def _issue(session: Session, dev_session: DeviceSession) -> tuple[str, str]:
    refresh = secrets.token_urlsafe(32)
    pair = _token_hash(refresh)
    session.add(RefreshToken(token_hash=pair, session_id=dev_session.id, expires_at=now() + REFRESH_TTL))
    access = make_access_token(signing_key(session), dev_session.id, dev_session.user_id, pair=pair)
    return access, refresh


def check_password(session: Session, username: str, password: str, address: str) -> User:
    """The user, if the password is right, the account enabled and the rate limit not reached.

    The one check behind both the API's login and the admin console's sign-in, so they share
    the rate limit. A failure is recorded by the caller in its own transaction
    (:func:`record_failure`), because this one is rolled back.
    """
    _check_rate_limit(session, username, address)
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise AuthError("bad_credentials", "wrong user name or password")
    if user.disabled:
        raise AuthError("user_disabled", f"the account {username!r} is disabled: ask an admin", status=403)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def login(session: Session, username: str, password: str, device_id: str, device_name: str,
          address: str) -> tuple[User, DeviceSession, str, str]:
    """Check the password and open a new session for the device; answers (user, session, access, refresh).

    A failed attempt is recorded by the caller in its own transaction (see :func:`record_failure`),
    because this one is rolled back.
    """
    user = check_password(session, username, password, address)
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        device = Device(id=device_id, user_id=user.id, name=device_name, last_mutation_id=0)
        session.add(device)
        session.flush()
    elif device.user_id != user.id:
        raise AuthError("device_in_use", "this device is registered to another user: use a new home for "
                        "another account", status=409)
    # one live session per device: a new sign-in ends the previous one
    session.execute(update(DeviceSession).where(DeviceSession.device_id == device_id,
                                                DeviceSession.revoked_at.is_(None))
                    .values(revoked_at=now(), revoked_reason="signed in again"))
    dev_session = DeviceSession(id=uuid7(), device_id=device_id, user_id=user.id)
    session.add(dev_session)
    session.flush()
    access, refresh = _issue(session, dev_session)
    return user, dev_session, access, refresh


def record_failure(session: Session, username: str, address: str) -> None:
    session.add(LoginFailure(username=username, address=address))


class RefreshReuse(AuthError):
    """A rotated refresh token came back: the session is revoked (commit that before refusing)."""


def refresh(session: Session, token: str) -> tuple[User, DeviceSession, str, str]:
    row = session.get(RefreshToken, _token_hash(token), with_for_update=True)
    if row is None:
        raise AuthError("unauthorized", "unknown refresh token: sign in again")
    dev_session = session.get(DeviceSession, row.session_id, with_for_update=True)
    if dev_session.revoked_at is not None:
        raise AuthError("session_revoked", f"this device was signed out ({dev_session.revoked_reason}): sign in again")
    if row.used_at is not None and not _retry_of_a_lost_answer(session, row):
        dev_session.revoked_at = now()
        dev_session.revoked_reason = "a used refresh token was presented again"
        log.warning("refresh token reuse on device %s: session %s revoked", dev_session.device_id, dev_session.id)
        raise RefreshReuse("refresh_reused", "this refresh token was already used, so the device was signed out "
                           "for safety: sign in again")
    if _aware(row.expires_at) < now():
        raise AuthError("unauthorized", "the refresh token has expired: sign in again")
    user = session.get(User, dev_session.user_id)
    if user.disabled:
        raise AuthError("user_disabled", f"the account {user.username!r} is disabled: ask an admin", status=403)
    row.used_at = row.used_at or now()
    row.received_at = row.received_at or now()
    access, new_refresh = _issue(session, dev_session)
    return user, dev_session, access, new_refresh


def _retry_of_a_lost_answer(session: Session, row: RefreshToken) -> bool:
    """A used token came back: true (and the lost pair dropped) when its answer never reached the client.

    The answer is lost when every live token of the session (the pair answered for ``row``) was
    never used nor had its access token used, and ``row`` was used within the retry window.
    """
    if _aware(row.used_at) + REFRESH_RETRY_WINDOW < now():
        return False
    live = session.scalars(select(RefreshToken).where(RefreshToken.session_id == row.session_id,
                                                      RefreshToken.used_at.is_(None))).all()
    if any(t.received_at is not None for t in live):
        return False
    for t in live:
        session.delete(t)
    log.info("refresh retried on session %s: the pair answered before never arrived, so it was dropped",
             row.session_id)
    return True


def revoke_session(session: Session, session_id: str, reason: str) -> None:
    session.execute(update(DeviceSession).where(DeviceSession.id == session_id, DeviceSession.revoked_at.is_(None))
                    .values(revoked_at=now(), revoked_reason=reason))


def session_for_refresh_token(session: Session, token: str) -> str | None:
    row = session.get(RefreshToken, _token_hash(token))
    return row.session_id if row else None
