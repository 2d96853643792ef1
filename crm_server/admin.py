"""What an admin does from the command line: users, teams, trusted keys, published plugins.

Each function runs inside one write transaction handed in by the caller and
raises :class:`ServerError` with one clear sentence on bad input, having changed
nothing. Changes that alter what a user may see (team, role) write the change-log
rows that tell that user's devices what to remove and what to fetch, in the same
transaction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version
from sqlalchemy import and_, delete, false, func, not_, or_, select
from sqlalchemy.orm import Session

from crm_desktop.domain.enums import EntityName, Role
from crm_desktop.domain.ids import uuid7
from crm_desktop.sync.protocol import SHARED_ENTITIES
from crm_server.auth import hash_password, now
from crm_server.changelog import log_change, log_rescope
from crm_server.errors import ServerError
from crm_server.models import PublishedPluginRow, Record, Setting, Team, TeamMember, User

TRUSTED_KEYS = "trusted_keys"
ROLES = tuple(r.value for r in Role)


@dataclass(frozen=True)
class UserRow:
    username: str
    role: str
    teams: tuple[str, ...]
    disabled: bool


def _team_ids(session: Session, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        team = session.scalar(select(Team).where(Team.name == name))
        if team is None:
            raise ServerError(f"no team {name!r}: add it first with 'crm-server team add {name}'")
        ids.append(team.id)
    return ids


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ServerError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def add_team(session: Session, name: str) -> None:
    name = name.strip()
    if not name or len(name) > 100:
        raise ServerError("a team name is 1 to 100 characters")
    if session.scalar(select(Team).where(Team.name == name)):
        raise ServerError(f"team {name!r} already exists")
    session.add(Team(id=uuid7(), name=name))


def add_user(session: Session, username: str, role: str, teams: list[str], password: str,
             display_name: str | None = None) -> None:
    username = username.strip()
    if not username or len(username) > 100 or any(c.isspace() for c in username):
        raise ServerError(f"user name {username!r} must be 1 to 100 characters without spaces")
    _check_role(role)
    if len(password) < 8:
        raise ServerError("the password must be at least 8 characters")
    if session.scalar(select(User).where(User.username == username)):
        raise ServerError(f"user {username!r} already exists: change it with 'crm-server user set'")
    team_ids = _team_ids(session, teams)
    user = User(id=uuid7(), username=username, display_name=display_name or username, role=role,
                password_hash=hash_password(password), disabled=False)
    session.add(user)
    session.flush()
    for team_id in team_ids:
        session.add(TeamMember(user_id=user.id, team_id=team_id))
    _publish_user(session, user, team_ids)


def _publish_user(session: Session, user: User, team_ids: list[str]) -> None:
    """Keep the user's shared ``user`` record (the clients' local copy of users) current."""
    data = {"username": user.username, "display_name": user.display_name, "email": None, "role": user.role}
    record = session.get(Record, user.id)
    team_id = team_ids[0] if team_ids else None
    if record is None:
        record = Record(id=user.id, entity=EntityName.USER.value, owner_id=None, team_id=team_id, version=1,
                        deleted=False, data=data, created_at=now(), updated_at=now())
        session.add(record)
        prev_team = None
    else:
        prev_team = record.team_id
        record.data, record.team_id, record.version, record.updated_at = data, team_id, record.version + 1, now()
    session.flush()
    log_change(session, record, prev_owner_id=None, prev_team_id=prev_team, device_id=None)


def list_users(session: Session) -> list[UserRow]:
    out = []
    for user in session.scalars(select(User).order_by(User.username)):
        teams = session.scalars(select(Team.name).join(TeamMember, TeamMember.team_id == Team.id)
                                .where(TeamMember.user_id == user.id).order_by(Team.name))
        out.append(UserRow(user.username, user.role, tuple(teams), user.disabled))
    return out


def set_user(session: Session, username: str, *, role: str | None = None, teams: list[str] | None = None,
             disabled: bool | None = None, password: str | None = None) -> None:
    user = session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        raise ServerError(f"no user {username!r}: see 'crm-server user list'")
    old_role = user.role
    old_teams = set(session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id)))
    new_teams = set(_team_ids(session, teams)) if teams is not None else old_teams
    if role is not None:
        user.role = _check_role(role)
    if disabled is not None:
        user.disabled = disabled
    if password is not None:
        if len(password) < 8:
            raise ServerError("the password must be at least 8 characters")
        user.password_hash = hash_password(password)
    if new_teams != old_teams:
        session.execute(delete(TeamMember).where(TeamMember.user_id == user.id))
        for team_id in sorted(new_teams):
            session.add(TeamMember(user_id=user.id, team_id=team_id))
    if new_teams != old_teams or user.role != old_role:
        session.flush()
        _rescope(session, user.id, old_role, old_teams, user.role, new_teams)
        _publish_user(session, user, sorted(new_teams))


def _rescope(session: Session, user_id: str, old_role: str, old_teams: set[str], new_role: str,
             new_teams: set[str]) -> None:
    """Tell the user's devices about every record whose visibility to them changed."""

    def visible(role: str, teams: set[str]):
        if role == Role.ADMIN:
            return True
        # coalesce: a record without a team is visible to neither side, not unknown (NULL)
        return func.coalesce(Record.team_id, "").in_(sorted(teams)) if teams else false()

    before, after = visible(old_role, old_teams), visible(new_role, new_teams)
    if before is True and after is True:
        return
    if before is True:
        changed = not_(after)
    elif after is True:
        changed = not_(before)
    else:
        changed = or_(and_(before, not_(after)), and_(after, not_(before)))
    ids = select(Record.id).where(
        Record.entity.not_in(sorted(SHARED_ENTITIES)),
        or_(Record.owner_id.is_(None), Record.owner_id != user_id),
        changed,
    )
    log_rescope(session, user_id, ids)


# --------------------------------------------------------------------------- plugins


def trusted_keys(session: Session) -> list[str]:
    row = session.get(Setting, TRUSTED_KEYS)
    return json.loads(row.value) if row else []


def trust_key(session: Session, key_or_file: str) -> str:
    from crm_desktop.plugin_host.signing import SignatureError, load_public_key, normalize_public_key

    try:
        if os.path.exists(key_or_file):
            key = load_public_key(key_or_file)
        else:
            key = normalize_public_key(key_or_file, "public key")
    except SignatureError as exc:
        raise ServerError(str(exc)) from None
    keys = trusted_keys(session)
    if key not in keys:
        keys.append(key)
        row = session.get(Setting, TRUSTED_KEYS)
        if row is None:
            session.add(Setting(key=TRUSTED_KEYS, value=json.dumps(keys)))
        else:
            row.value = json.dumps(keys)
    return key


def publish_plugin(session: Session, bundle: str) -> tuple[str, str]:
    """Verify ``BUNDLE`` and its ``.sig`` against the server's trusted keys and publish it."""
    from crm_desktop.plugin_host.bundle import BundleError, BundleVerifier
    from crm_desktop.plugin_host.policy import Policy
    from crm_desktop.plugin_host.signing import read_signature

    keys = trusted_keys(session)
    if not keys:
        raise ServerError("no trusted keys on this server: add the signing key with 'crm-server plugin trust KEY.pub'")
    path = Path(bundle)
    verifier = BundleVerifier(path, Policy(trusted_keys=frozenset(keys), require_signature=True))
    try:
        verifier.check_signature()
        verifier.open()
    except BundleError as exc:
        raise ServerError(str(exc)) from None
    finally:
        verifier.close()
    signature = read_signature(verifier.sig_path)[0]
    sig_doc = json.loads(verifier.sig_path.read_text(encoding="utf-8"))
    existing = session.get(PublishedPluginRow, verifier.name)
    if existing is not None and existing.withdrawn_at is None:
        try:
            if Version(verifier.version) <= Version(existing.version):
                raise ServerError(f"{verifier.name} {existing.version} is published; publish a higher version "
                                  f"than {verifier.version}")
        except InvalidVersion:
            raise ServerError(f"version {verifier.version!r} is not a valid version") from None
    row = existing or PublishedPluginRow(name=verifier.name)
    row.version, row.sha256, row.signature = verifier.version, signature.sha256, sig_doc
    row.bundle, row.published_at, row.withdrawn_at = path.read_bytes(), now(), None
    session.add(row)
    return verifier.name, verifier.version


def withdraw_plugin(session: Session, name: str) -> None:
    row = session.get(PublishedPluginRow, name)
    if row is None or row.withdrawn_at is not None:
        raise ServerError(f"no published plugin {name!r}")
    row.withdrawn_at = now()
