"""What an admin does, from the command line or the web console: users, teams, trusted keys, plugins.

Each function runs inside one write transaction handed in by the caller and
raises :class:`ServerError` with one clear sentence on bad input, having changed
nothing. Changes that alter what a user may see (team, role) write the change-log
rows that tell that user's devices what to remove and what to fetch, in the same
transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
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
from crm_server.models import Device, PublishedPluginRow, Record, Setting, Team, TeamMember, User

TRUSTED_KEYS = "trusted_keys"
PLUGIN_POLICY = "plugin_policy"
ROLES = tuple(r.value for r in Role)


@dataclass(frozen=True)
class UserRow:
    username: str
    role: str
    teams: tuple[str, ...]
    disabled: bool
    display_name: str = ""
    devices: int = 0


@dataclass(frozen=True)
class TeamRow:
    name: str
    members: int


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


def list_users(session: Session, teams: set[str] | None = None) -> list[UserRow]:
    """Every user, or only the members of the team names ``teams`` (a manager's read-only view)."""
    out = []
    for user in session.scalars(select(User).order_by(User.username)):
        names = tuple(session.scalars(select(Team.name).join(TeamMember, TeamMember.team_id == Team.id)
                                      .where(TeamMember.user_id == user.id).order_by(Team.name)))
        if teams is not None and not set(names) & teams:
            continue
        devices = session.scalar(select(func.count()).select_from(Device).where(Device.user_id == user.id))
        out.append(UserRow(user.username, user.role, names, user.disabled, user.display_name, devices or 0))
    return out


def list_teams(session: Session) -> list[TeamRow]:
    rows = session.execute(select(Team.name, func.count(TeamMember.user_id))
                           .outerjoin(TeamMember, TeamMember.team_id == Team.id)
                           .group_by(Team.name).order_by(Team.name))
    return [TeamRow(name, count) for name, count in rows]


def team_names_of(session: Session, user_id: str) -> set[str]:
    return set(session.scalars(select(Team.name).join(TeamMember, TeamMember.team_id == Team.id)
                               .where(TeamMember.user_id == user_id)))


def temporary_password() -> str:
    """A password to hand over once: 16 characters from an alphabet without look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def reset_password(session: Session, username: str) -> str:
    """Give the user a new temporary password (answered once, stored only as its hash)."""
    password = temporary_password()
    set_user(session, username, password=password)
    return password


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


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: str
    previous_version: str | None
    key_id: str
    warnings: tuple[str, ...]


def publish_plugin(session: Session, bundle: str | os.PathLike[str],
                   sig_path: str | os.PathLike[str] | None = None) -> PublishResult:
    """Verify ``BUNDLE`` and its ``.sig`` and publish it (a higher version rolls forward).

    The checks are the client's install checks (:func:`crm_desktop.plugin_host.bundle.stage_bundle`):
    the signature against the server's trusted keys, every zip entry, the file list's sizes and
    sha256 (a tampered member), the full manifest, and the static checks, strictly (a bundle a
    strict client would refuse is refused here). The bundle is extracted into a throwaway folder.
    """
    from crm_desktop.plugin_host.bundle import BundleError, stage_bundle
    from crm_desktop.plugin_host.manifest import read_manifest
    from crm_desktop.plugin_host.policy import Policy

    keys = trusted_keys(session)
    if not keys:
        raise ServerError("no trusted keys on this server: add the signing key with 'crm-server plugin trust KEY.pub'")
    path = Path(bundle)
    sig = Path(sig_path) if sig_path else Path(f"{path}.sig")
    policy = Policy(trusted_keys=frozenset(keys), require_signature=True, strict_static_checks=True)
    with tempfile.TemporaryDirectory(prefix="crm-publish-") as scratch:
        try:
            staged = stage_bundle(path, scratch, policy, lambda _name: None, sig_path=sig,
                                  manifest_validator=read_manifest)
        except BundleError as exc:
            raise ServerError(str(exc)) from None
        plan = staged.plan
        staged.discard()
    existing = session.get(PublishedPluginRow, plan.name)
    previous = existing.version if existing is not None and existing.withdrawn_at is None else None
    if previous is not None:
        try:
            if Version(plan.version) <= Version(previous):
                raise ServerError(f"{plan.name} {previous} is published; publish a higher version than "
                                  f"{plan.version}")
        except InvalidVersion:
            raise ServerError(f"version {plan.version!r} is not a valid version") from None
    sig_doc = json.loads(sig.read_text(encoding="utf-8"))
    row = existing or PublishedPluginRow(name=plan.name)
    row.version, row.sha256, row.signature = plan.version, plan.bundle_sha256, sig_doc
    row.bundle, row.published_at, row.withdrawn_at = path.read_bytes(), now(), None
    session.add(row)
    warnings = tuple(plan.warnings) + tuple(str(f) for f in plan.findings)
    return PublishResult(plan.name, plan.version, previous, plan.signature.key_id if plan.signature else "", warnings)


def withdraw_plugin(session: Session, name: str) -> None:
    row = session.get(PublishedPluginRow, name)
    if row is None or row.withdrawn_at is not None:
        raise ServerError(f"no published plugin {name!r}")
    row.withdrawn_at = now()


@dataclass(frozen=True)
class PluginRow:
    name: str
    version: str
    sha256: str
    key_id: str
    published_at: datetime
    withdrawn_at: datetime | None


def list_plugins(session: Session, include_withdrawn: bool = True) -> list[PluginRow]:
    query = select(PublishedPluginRow).order_by(PublishedPluginRow.name)
    if not include_withdrawn:
        query = query.where(PublishedPluginRow.withdrawn_at.is_(None))
    return [PluginRow(r.name, r.version, r.sha256, str(r.signature.get("keyId", "")) if isinstance(r.signature, dict)
                      else "", r.published_at, r.withdrawn_at) for r in session.scalars(query)]


def plugin_policy(session: Session):
    """The organisation's plugin policy (a :class:`crm_desktop.sync.protocol.PluginPolicy`)."""
    from crm_desktop.sync.protocol import PluginPolicy

    row = session.get(Setting, PLUGIN_POLICY)
    return PluginPolicy.model_validate_json(row.value) if row else PluginPolicy()


def _plugin_names(values: list[str] | None, field: str) -> list[str] | None:
    from crm_desktop.plugin_host.manifest import NAME_RE

    if values is None:
        return None
    out: list[str] = []
    for value in values:
        name = value.strip()
        if not name:
            continue
        if not NAME_RE.fullmatch(name):
            raise ServerError(f"{field}: {name!r} is not a plugin name (lower-case letters, digits and dashes, "
                              f"e.g. sample-plugin)")
        if name not in out:
            out.append(name)
    return out


def set_plugin_policy(session: Session, *, allowed: list[str] | None, blocked: list[str],
                      required: list[str]):
    """Replace the policy; ``allowed`` None means every plugin not blocked may run."""
    from crm_desktop.sync.protocol import PluginPolicy

    allowed_names = _plugin_names(allowed, "allowed")
    blocked_names = _plugin_names(blocked, "blocked") or []
    required_names = _plugin_names(required, "required") or []
    both = sorted(set(blocked_names) & (set(allowed_names or []) | set(required_names)))
    if both:
        raise ServerError(f"{both[0]!r} is both blocked and allowed or required: keep it in one list")
    if allowed_names is not None:
        missing = [n for n in required_names if n not in allowed_names]
        if missing:
            raise ServerError(f"{missing[0]!r} is required but not in the allowed list: add it there too")
    policy = PluginPolicy(allowed=allowed_names, blocked=blocked_names, required=required_names)
    row = session.get(Setting, PLUGIN_POLICY)
    if row is None:
        session.add(Setting(key=PLUGIN_POLICY, value=policy.model_dump_json()))
    else:
        row.value = policy.model_dump_json()
    return policy
