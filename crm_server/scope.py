"""Who sees and who may change which record (DESIGN.md, Sync: Scope).

- admins: every record;
- managers: the records of their teams (a manager may lead several), and their own;
- reps: their own records and their team's.
Reference data (pipelines, stages, tags, users) is shared: everyone sees it.
The same rule decides what a pull sends and what a push may touch.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, true

from crm_desktop.domain.enums import EntityName
from crm_desktop.sync.protocol import SHARED_ENTITIES
from crm_server.auth import Principal
from crm_server.models import Change

#: Shared entities that only managers and admins may change.
MANAGED_ENTITIES = frozenset({EntityName.PIPELINE, EntityName.STAGE})


def can_see(who: Principal, entity: str, owner_id: str | None, team_id: str | None) -> bool:
    if who.is_admin or entity in SHARED_ENTITIES:
        return True
    return owner_id == who.user_id or (team_id is not None and team_id in who.teams)


def write_refusal(who: Principal, entity: str) -> str | None:
    """Why this user may not change records of this entity at all, or None."""
    if entity in MANAGED_ENTITIES and who.role not in ("manager", "admin"):
        return f"only managers and admins change {entity}s"
    return None


def changes_visible_to(who: Principal) -> ColumnElement[bool]:
    """SQL filter: change rows that concern this user, before or after the change."""
    targeted = or_(Change.target_user_id.is_(None), Change.target_user_id == who.user_id)
    if who.is_admin:
        return targeted
    teams = list(who.teams)
    in_scope = or_(
        Change.shared == true(),
        Change.owner_id == who.user_id,
        Change.prev_owner_id == who.user_id,
        Change.team_id.in_(teams) if teams else false(),
        Change.prev_team_id.in_(teams) if teams else false(),
    )
    return or_(Change.target_user_id == who.user_id, and_(Change.target_user_id.is_(None), in_scope))
