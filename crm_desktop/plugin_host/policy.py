"""The admin's plugin trust policy (DESIGN.md, Plugins and Bundles).

A policy is a JSON object::

    {
      "trustedKeys": ["ed25519:..."],          # publisher keys whose signatures count
      "requireSignature": true,                 # refuse unsigned / untrusted bundles
      "allowedPlugins": ["sample-plugin"],      # absent or null: any name not blocked
      "blockedPlugins": ["old-plugin"],         # shown as blocked, never imported
      "strictStaticChecks": false,              # static-check errors refuse an install
      "deniedPermissions": ["api:access"],      # no plugin gets these
      "grants": {"backup-tool": ["subprocess", "files:/srv/exports"]},  # tripwire exceptions
      "pluginsDir": "/opt/crm-desktop/plugins", # the admin's system plugin folder
      "allowUnsignedFrom": ["~/src/crm-plugins"]  # under requireSignature: unsigned folders here still load
    }

What ``requireSignature`` covers
--------------------------------
It refuses unsigned or untrusted *bundles* at install, and at load it lets a
plugin run only if it is (see :mod:`crm_desktop.plugin_host.trust`):

* first-party: shipped inside the application (the bundled ``plugins/``
  folder), trusted as part of the application;
* installed from a verified bundle: the install record kept in its folder
  carries a signature by a key the policy trusts *now*, and its files still
  match the bundle's file list;
* in a folder listed in ``allowUnsignedFrom`` (the plugin's folder or one of
  its parents): the admin's explicit exemption for development.

Everything else (a folder copied or scaffolded into ``<home>/plugins``, one
installed with "Install from folder…", a plugin in the system folder that was
not installed from a bundle) is listed as blocked with the reason.

Where it comes from
-------------------
The **system policy** is admin-owned: :func:`default_system_policy_path` (for
example ``/etc/crm-desktop/policy.json``). Only if that file does not exist is
``CRM_DESKTOP_POLICY`` consulted — otherwise a user could point the variable
at a file of their own and loosen the admin's rules. The **user policy** is
``<home>/policy.json``.

How they combine — the user can only tighten
--------------------------------------------
Without a system policy the user is the admin of their own machine and their
file is the policy. With one, :func:`merge` gives:

========================  ==================================================
``trustedKeys``           system keys; if the user lists keys, only the
                          system keys the user also lists (a user may
                          distrust a key, never add one)
``requireSignature``      system OR user
``allowedPlugins``        intersection of the lists that are given
                          (absent = no restriction)
``blockedPlugins``        union
``strictStaticChecks``    system OR user
``deniedPermissions``     union
``grants``                system only (a grant loosens); user grants are
                          ignored with a warning
``pluginsDir``            system only; ignored with a warning in a user file
``allowUnsignedFrom``     if the system requires signatures: the system's
                          folders, narrowed to those the user also lists
                          (a user may drop an exemption, never add one);
                          otherwise both lists (the requirement is then the
                          user's own, and so are its exemptions)
========================  ==================================================

The organisation layer — from the sync server, tightening only
--------------------------------------------------------------
When the home is signed in to a sync server, each sync writes the
organisation's plugin policy (edited on the server's admin console) to
``<home>/org-policy.json`` (:data:`ORG_POLICY_NAME`). :func:`load_policy`
applies it last, and it can only tighten: its ``blocked`` names are added to
``blockedPlugins``, its ``allowed`` list (if not null) is intersected with
``allowedPlugins``. It never adds a trusted key, a grant or an exemption, and
``required`` is not a policy rule here (the sync installs required plugins).

A malformed policy file is an error naming the file, the key and the rule:
the app does not guess what an admin meant.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from crm_desktop.errors import CrmError
from crm_desktop.plugin_host.json_files import read_bounded_json

log = logging.getLogger(__name__)

POLICY_ENV = "CRM_DESKTOP_POLICY"
#: Written by sync into the home: the organisation's plugin policy served with ``GET /api/v1/plugins``.
ORG_POLICY_NAME = "org-policy.json"
MAX_POLICY_BYTES = 1024 * 1024

#: Tripwire grants a policy may give: ``network``, ``subprocess``, ``native`` or ``files:<folder>``.
GRANT_KINDS = ("network", "subprocess", "native")
FILES_GRANT_PREFIX = "files:"

_KNOWN_KEYS = {
    "trustedKeys", "requireSignature", "allowedPlugins", "blockedPlugins",
    "strictStaticChecks", "deniedPermissions", "grants", "pluginsDir", "allowUnsignedFrom", "comment",
}
_SYSTEM_ONLY_KEYS = ("grants", "pluginsDir")


class PolicyError(CrmError):
    """A policy file is unreadable or breaks a rule; names the file and key."""


@dataclass(frozen=True)
class Policy:
    """The effective trust policy. The default (no files) trusts nothing and requires nothing."""

    trusted_keys: frozenset[str] = frozenset()
    require_signature: bool = False
    allowed_plugins: frozenset[str] | None = None
    blocked_plugins: frozenset[str] = frozenset()
    strict_static_checks: bool = False
    denied_permissions: frozenset[str] = frozenset()
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    plugins_dir: Path | None = None
    #: Folders whose plugins load unsigned under ``require_signature`` (absolute, ``~`` expanded).
    allow_unsigned_from: tuple[Path, ...] = ()
    #: Files the policy was read from, in order (system first); for messages and the admin panel.
    sources: tuple[str, ...] = ()

    def is_blocked(self, plugin: str) -> bool:
        """True if the policy lists ``plugin`` as blocked."""
        return plugin in self.blocked_plugins

    def refusal(self, plugin: str) -> str | None:
        """Why ``plugin`` may not be installed or loaded, or ``None`` if it may."""
        if plugin in self.blocked_plugins:
            return f"plugin {plugin!r} is blocked by the policy ({self._where()})"
        if self.allowed_plugins is not None and plugin not in self.allowed_plugins:
            return f"plugin {plugin!r} is not in the policy's allowedPlugins ({self._where()})"
        return None

    def is_allowed(self, plugin: str) -> bool:
        """True if neither blocked nor left out of ``allowedPlugins``."""
        return self.refusal(plugin) is None

    def is_trusted(self, public_key: str) -> bool:
        """True if ``public_key`` (a ``ed25519:...`` line) is one of the trusted keys."""
        return public_key.strip() in self.trusted_keys

    def permits(self, permission: str) -> bool:
        """False for permissions the policy denies to every plugin."""
        return permission not in self.denied_permissions

    def grants_for(self, plugin: str) -> frozenset[str]:
        """The tripwire grants the admin gave ``plugin`` (``subprocess``, ``files:/x``, ...)."""
        return frozenset(self.grants.get(plugin, frozenset()))

    def unsigned_exemption(self, folder: str | os.PathLike[str]) -> Path | None:
        """The ``allowUnsignedFrom`` entry that covers plugin ``folder`` (itself or a parent), or ``None``."""
        resolved = Path(folder).resolve()
        for allowed in self.allow_unsigned_from:
            if resolved == allowed or allowed in resolved.parents:
                return allowed
        return None

    def where(self) -> str:
        """The policy files in effect, for messages."""
        return self._where()

    def _where(self) -> str:
        return ", ".join(self.sources) if self.sources else "default policy"

    def to_json(self) -> dict[str, Any]:
        """The policy in its file form (sorted lists), e.g. for ``--json`` output."""
        return {
            "trustedKeys": sorted(self.trusted_keys),
            "requireSignature": self.require_signature,
            "allowedPlugins": None if self.allowed_plugins is None else sorted(self.allowed_plugins),
            "blockedPlugins": sorted(self.blocked_plugins),
            "strictStaticChecks": self.strict_static_checks,
            "deniedPermissions": sorted(self.denied_permissions),
            "grants": {k: sorted(v) for k, v in sorted(self.grants.items())},
            "pluginsDir": str(self.plugins_dir) if self.plugins_dir else None,
            "allowUnsignedFrom": [str(p) for p in self.allow_unsigned_from],
        }


def default_system_policy_path() -> Path:
    """The admin-owned policy location of this platform."""
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(base) / "crm-desktop" / "policy.json"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/crm-desktop/policy.json")
    return Path("/etc/crm-desktop/policy.json")


def system_policy_path(
    admin_path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The system policy file in effect, or ``None``.

    The admin-owned file wins; ``CRM_DESKTOP_POLICY`` only applies when that
    file does not exist (deployments without /etc access, tests).
    """
    environ = os.environ if environ is None else environ
    admin_path = default_system_policy_path() if admin_path is None else admin_path
    if admin_path.exists():
        if environ.get(POLICY_ENV):
            log.warning("ignoring %s=%s: the admin policy %s exists and wins", POLICY_ENV, environ[POLICY_ENV], admin_path)
        return admin_path
    if environ.get(POLICY_ENV):
        path = Path(environ[POLICY_ENV]).expanduser()
        if not path.exists():
            # Fail closed: a named system policy that vanished must not mean "no policy".
            raise PolicyError(f"{POLICY_ENV} names {path}, which does not exist")
        return path
    return None


def parse_policy(doc: Any, source: str) -> Policy:
    """Build a :class:`Policy` from a decoded JSON object; errors name ``source`` and the key."""
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: a policy is a JSON object, not {type(doc).__name__}")
    unknown = sorted(set(doc) - _KNOWN_KEYS)
    if unknown:
        raise PolicyError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_KNOWN_KEYS - {'comment'}))}")

    def names(key: str) -> frozenset[str] | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise PolicyError(f"{source}: {key} must be a list of names, got {value!r}")
        return frozenset(v.strip() for v in value)

    def flag(key: str) -> bool:
        value = doc.get(key, False)
        if not isinstance(value, bool):
            raise PolicyError(f"{source}: {key} must be true or false, got {value!r}")
        return value

    from crm_desktop.plugin_host.signing import SignatureError, normalize_public_key

    keys: set[str] = set()
    for i, text in enumerate(names("trustedKeys") or ()):
        try:
            keys.add(normalize_public_key(text, f"{source}: trustedKeys[{i}]"))
        except SignatureError as exc:
            raise PolicyError(str(exc)) from None

    grants: dict[str, frozenset[str]] = {}
    raw_grants = doc.get("grants") or {}
    if not isinstance(raw_grants, dict):
        raise PolicyError(f"{source}: grants must be an object of plugin name -> list of grants")
    for plugin, items in raw_grants.items():
        if not isinstance(items, list) or not all(isinstance(g, str) for g in items):
            raise PolicyError(f"{source}: grants.{plugin} must be a list of strings, got {items!r}")
        for g in items:
            if g not in GRANT_KINDS and not (g.startswith(FILES_GRANT_PREFIX) and len(g) > len(FILES_GRANT_PREFIX)):
                raise PolicyError(
                    f"{source}: grants.{plugin}: {g!r} is not a grant; use one of "
                    f"{', '.join(GRANT_KINDS)} or 'files:<folder>'"
                )
        grants[plugin] = frozenset(items)

    plugins_dir = doc.get("pluginsDir")
    if plugins_dir is not None and not isinstance(plugins_dir, str):
        raise PolicyError(f"{source}: pluginsDir must be a folder path, got {plugins_dir!r}")

    allow_unsigned: list[Path] = []
    raw_allow = doc.get("allowUnsignedFrom")
    if raw_allow is not None:
        if not isinstance(raw_allow, list) or not all(isinstance(v, str) and v.strip() for v in raw_allow):
            raise PolicyError(f"{source}: allowUnsignedFrom must be a list of folder paths, got {raw_allow!r}")
        for text in raw_allow:
            folder = Path(text.strip()).expanduser()
            if not folder.is_absolute():
                raise PolicyError(f"{source}: allowUnsignedFrom: {text!r} is not an absolute folder path; "
                                  f"write it in full (or start it with ~), e.g. '~/src/crm-plugins'")
            allow_unsigned.append(folder.resolve())

    allowed = names("allowedPlugins")
    return Policy(
        trusted_keys=frozenset(keys),
        require_signature=flag("requireSignature"),
        allowed_plugins=allowed,
        blocked_plugins=names("blockedPlugins") or frozenset(),
        strict_static_checks=flag("strictStaticChecks"),
        denied_permissions=names("deniedPermissions") or frozenset(),
        grants=grants,
        plugins_dir=Path(plugins_dir) if plugins_dir else None,
        allow_unsigned_from=tuple(dict.fromkeys(allow_unsigned)),
        sources=(source,),
    )


def read_policy_file(path: Path) -> tuple[Policy, dict[str, Any]]:
    """Read and parse one policy file; returns the policy and the raw object."""
    doc = read_bounded_json(path, MAX_POLICY_BYTES, PolicyError, noun="policy")
    return parse_policy(doc, str(path)), doc


def merge(system: Policy, user: Policy, user_doc: Mapping[str, Any] | None = None) -> Policy:
    """The system policy tightened by the user's (see the module docstring).

    ``user_doc`` is the user's raw object, used to tell "no trustedKeys given"
    from "an empty list given" and to warn about system-only keys.
    """
    user_doc = user_doc or {}
    for key in _SYSTEM_ONLY_KEYS:
        if user_doc.get(key):
            log.warning("%s: %s is ignored in a user policy while a system policy exists", user.sources, key)
    if "trustedKeys" in user_doc and user_doc["trustedKeys"] is not None:
        trusted = system.trusted_keys & user.trusted_keys  # distrust only, never add
    else:
        trusted = system.trusted_keys
    if system.allowed_plugins is None:
        allowed = user.allowed_plugins
    elif user.allowed_plugins is None:
        allowed = system.allowed_plugins
    else:
        allowed = system.allowed_plugins & user.allowed_plugins
    if system.require_signature:
        # an exemption loosens the admin's requirement: the user may drop one, never add one
        if user_doc.get("allowUnsignedFrom") is not None:
            kept = set(user.allow_unsigned_from)
            ignored = [str(p) for p in user.allow_unsigned_from if p not in system.allow_unsigned_from]
            if ignored:
                log.warning("%s: allowUnsignedFrom %s ignored: the system policy requires signatures and a "
                            "user policy cannot add exemptions", user.sources, ", ".join(ignored))
            allow_unsigned = tuple(p for p in system.allow_unsigned_from if p in kept)
        else:
            allow_unsigned = system.allow_unsigned_from
    else:
        # the system lets anything load; signatures are required (if at all) by the user's own choice
        allow_unsigned = tuple(dict.fromkeys(system.allow_unsigned_from + user.allow_unsigned_from))
    return replace(
        system,
        trusted_keys=trusted,
        require_signature=system.require_signature or user.require_signature,
        allowed_plugins=allowed,
        blocked_plugins=system.blocked_plugins | user.blocked_plugins,
        strict_static_checks=system.strict_static_checks or user.strict_static_checks,
        denied_permissions=system.denied_permissions | user.denied_permissions,
        allow_unsigned_from=allow_unsigned,
        sources=system.sources + user.sources,
    )


def load_policy(
    user_path: Path | None,
    *,
    admin_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Policy:
    """The effective policy: system (admin file or ``CRM_DESKTOP_POLICY``) tightened by the user's.

    ``user_path`` is normally ``Home.policy_path``; missing files are simply
    absent layers. ``admin_path`` overrides :func:`default_system_policy_path`
    (tests).
    """
    sys_path = system_policy_path(admin_path, environ)
    system = read_policy_file(sys_path)[0] if sys_path else None
    user, user_doc = (None, None)
    if user_path is not None and Path(user_path).exists():
        user, user_doc = read_policy_file(Path(user_path))
    if system and user:
        effective = merge(system, user, user_doc)
    else:
        effective = system or user or Policy()
    if user_path is not None:
        org = read_org_policy(org_policy_path(user_path))
        if org is not None:
            effective = tighten_with_org(effective, org)
    return effective


def org_policy_path(user_path: str | os.PathLike[str]) -> Path:
    """``org-policy.json`` beside the user policy (both in the home)."""
    return Path(user_path).parent / ORG_POLICY_NAME


def read_org_policy(path: Path) -> Policy | None:
    """The organisation layer written by sync (``{"allowed", "blocked", "required", ...}``), or None."""
    if not Path(path).exists():
        return None
    doc = read_bounded_json(Path(path), MAX_POLICY_BYTES, PolicyError, noun="organisation policy")
    if not isinstance(doc, dict):
        raise PolicyError(f"{path}: the organisation policy must be a JSON object")

    def names(key: str) -> frozenset[str] | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"{path}: {key} must be a list of plugin names or null, not {value!r}")
        return frozenset(value)

    return Policy(allowed_plugins=names("allowed"), blocked_plugins=names("blocked") or frozenset(),
                  sources=(f"{path} (organisation policy from the sync server)",))


def tighten_with_org(local: Policy, org: Policy) -> Policy:
    """``local`` with the organisation's blocked names added and its allowed list intersected."""
    if org.allowed_plugins is None:
        allowed = local.allowed_plugins
    elif local.allowed_plugins is None:
        allowed = org.allowed_plugins
    else:
        allowed = local.allowed_plugins & org.allowed_plugins
    return replace(local, allowed_plugins=allowed, blocked_plugins=local.blocked_plugins | org.blocked_plugins,
                   sources=local.sources + org.sources)


def load_home_policy(home: Any) -> Policy:
    """:func:`load_policy` for a :class:`crm_desktop.paths.Home`."""
    return load_policy(home.policy_path)
