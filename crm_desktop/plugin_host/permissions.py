"""What a plugin may do: manifest ∩ admin policy ∩ the user's role (docs/permissions.md).

The role table is deliberately small. Until login lands, the local user is
``admin`` (one person on their own machine); after sign-in the host is given
the user's role from the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from crm_desktop.domain.actor import Actor
from crm_desktop.domain.enums import Role
from crm_desktop.plugin_api.errors import PermissionDenied
from crm_desktop.plugin_host.manifest import CORE_PERMISSIONS, RESOURCES

log = logging.getLogger(__name__)

_RECORDS = ("contacts", "companies", "leads", "deals", "activities")

#: Core permissions each role allows a plugin to use on the user's behalf.
#: Plugin-provided permissions (``sample:access``) are allowed to every role.
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.REP: frozenset({f"{r}:{a}" for r in _RECORDS for a in ("read", "write")}
                        | {"users:read", "pipelines:read", "tags:read", "tags:write", "api:access", "network"}),
    Role.MANAGER: frozenset({f"{r}:{a}" for r in _RECORDS for a in ("read", "write")}
                            | {"users:read", "pipelines:read", "tags:read", "tags:write", "api:access", "network"}),
    Role.ADMIN: frozenset(CORE_PERMISSIONS),
}
DEFAULT_LOCAL_ROLE = Role.ADMIN
assert set(RESOURCES) == set(_RECORDS) | {"users"}


def role_allows(role: Role, permission: str) -> bool:
    """True if a user of ``role`` may let a plugin use ``permission``."""
    if permission not in CORE_PERMISSIONS:
        return True
    return permission in ROLE_PERMISSIONS[Role(role)]


@dataclass
class PermissionGate:
    """Checks one plugin's calls; a refusal raises and is audited (``permission.denied``).

    ``declared`` are the manifest's permissions plus what it ``provides`` (a provided
    permission guards the plugin's own features; the policy and the role decide it),
    ``policy_permits(permission)`` the admin policy, ``role()`` the current user's role.
    """

    plugin: str
    declared: frozenset[str]
    policy_permits: Callable[[str], bool]
    role: Callable[[], Role]
    audit: Callable[[Actor, str, dict], None] | None = None

    def refusal(self, permission: str) -> str | None:
        """Which rule refuses ``permission``, or None when it is allowed."""
        if permission not in self.declared:
            return "not declared in its plugin.json permissions"
        if not self.policy_permits(permission):
            return "denied by the admin policy (deniedPermissions)"
        role = self.role()
        if not role_allows(role, permission):
            return f"the user's role {Role(role).value!r} does not allow it"
        return None

    def allowed(self, permission: str) -> bool:
        """True if ``permission`` is allowed now (no audit)."""
        return self.refusal(permission) is None

    def check(self, permission: str, operation: str) -> None:
        """Raise :class:`PermissionDenied` (after auditing it) unless ``permission`` is allowed."""
        reason = self.refusal(permission)
        if reason is None:
            return
        self.deny(permission, operation, reason)

    def deny(self, permission: str, operation: str, reason: str) -> None:
        """Audit and raise a refusal decided elsewhere (a host not in network.hosts, a foreign table)."""
        log.warning("plugin %s denied %s (%s): %s", self.plugin, permission, operation, reason)
        if self.audit is not None:
            try:
                self.audit(Actor.plugin(self.plugin), "permission.denied",
                           {"permission": permission, "operation": operation, "reason": reason})
            except Exception:  # the refusal must stand even if the audit write fails
                log.exception("could not audit a denied permission of plugin %s", self.plugin)
        raise PermissionDenied(self.plugin, permission, operation, reason)

    def effective(self) -> list[str]:
        """The declared permissions that are allowed now, sorted."""
        return sorted(p for p in self.declared if self.allowed(p))
