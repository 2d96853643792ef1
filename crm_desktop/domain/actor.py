"""Who is making a change: recorded on every audit entry."""

from __future__ import annotations

from dataclasses import dataclass

from crm_desktop.domain.enums import ActorKind


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str
    user_id: str | None = None
    #: the team new records of this actor belong to (stamped when a record has none)
    team_id: str | None = None
    #: who an agent acts for (the signed-in user's name), written to the audit log beside it
    on_behalf_of: str | None = None

    @classmethod
    def user(cls, name: str = "local", user_id: str | None = None, team_id: str | None = None) -> "Actor":
        return cls(ActorKind.USER, name, user_id, team_id)

    @classmethod
    def plugin(cls, name: str, user_id: str | None = None) -> "Actor":
        return cls(ActorKind.PLUGIN, name, user_id)

    @classmethod
    def agent(cls, name: str, user_id: str | None = None, on_behalf_of: str | None = None,
              team_id: str | None = None) -> "Actor":
        """An AI agent (``name`` is the model) acting for user ``on_behalf_of`` (``user_id``): its
        writes are audited as ``agent:<model>`` with ``on_behalf_of`` beside it, and what it creates
        belongs to that user."""
        return cls(ActorKind.AGENT, name, user_id, team_id, on_behalf_of)

    @classmethod
    def sync(cls, name: str = "server") -> "Actor":
        """Writes that mirror the sync server (pulled records, push answers)."""
        return cls(ActorKind.SYNC, name)

    @classmethod
    def system(cls, name: str = "crm-desktop") -> "Actor":
        return cls(ActorKind.SYSTEM, name)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


LOCAL_USER = Actor.user()
