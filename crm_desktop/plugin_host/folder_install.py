"""Installing a plugin from a folder follows the same rules as a bundle (issue 8, section 3).

"Install from folder…" (and ``crm-desktop plugin install DIR``) copies a
plugin folder into ``<home>/plugins``. :func:`plan_folder_install` decides,
without changing anything, whether that is allowed and what it would do:

* the policy's ``blockedPlugins`` / ``allowedPlugins``;
* no downgrade: a lower version than the installed one is refused;
* a bundled or system plugin of the same name cannot be replaced;
* under ``requireSignature`` a folder is unsigned, so it is refused unless
  the folder it lands in is listed in ``allowUnsignedFrom`` (or it is a copy
  of a verified bundle install, kept file list and signature included); a
  signed install is never replaced by unsigned code;
* static-check errors refuse it under ``strictStaticChecks``.

The returned :class:`FolderInstallPlan` is what the approval question shows
(the same fields as a bundle's ``InstallPlan``). No Qt here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from packaging.version import InvalidVersion, Version

from crm_desktop.plugin_host.json_files import loads_bounded
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host import static_checks, trust
from crm_desktop.plugin_host.discovery import inspect_folder
from crm_desktop.plugin_host.manifest import MANIFEST_FILE
from crm_desktop.plugin_host.policy import Policy

log = logging.getLogger(__name__)


@dataclass
class FolderInstallPlan:
    """What installing a folder would do; shown for approval before anything is copied."""

    source: Path
    target: Path
    name: str
    version: str
    previous_version: str | None
    publisher: str
    permissions: list[str]
    findings: list[static_checks.Finding]
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: A folder carries no signature (the approval dialog reads this like a bundle's plan).
    signature: None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` output and the admin panel."""
        return {"source": str(self.source), "target": str(self.target), "name": self.name,
                "version": self.version, "previousVersion": self.previous_version, "publisher": self.publisher,
                "permissions": self.permissions, "findings": [f.to_json() for f in self.findings],
                "warnings": self.warnings}


def _older(version: str, than: str) -> bool:
    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        log.warning("cannot compare versions %r and %r; treating as not older", version, than)
        return False


def plan_folder_install(
    path: Path,
    plugins_dir: Path,
    policy: Policy,
    existing: Callable[[str], Any],
) -> FolderInstallPlan:
    """Check ``path`` against the rules above; :class:`PluginError` (naming the rule) if refused.

    ``existing(name)`` returns the host's record of an installed plugin of
    that name, or None.
    """
    path = Path(path).resolve()
    plugins_dir = Path(plugins_dir).resolve()
    if not path.is_dir():
        raise PluginError(f"{path}: not a folder")
    candidate = inspect_folder(path, "user")
    if candidate.error or candidate.manifest is None:
        raise PluginError(candidate.error or f"{path}: no valid {MANIFEST_FILE}")
    manifest = candidate.manifest
    name, version = manifest.name, manifest.version
    refusal = policy.refusal(name)
    if refusal:
        raise PluginError(f"installing {name} from {path} refused: {refusal}")
    record = existing(name)
    if record is not None and record.source != "user":
        raise PluginError(f"a {record.source} plugin named {name!r} exists at {record.path}; "
                          f"a user plugin cannot replace it")
    target = plugins_dir / (path.name if path.parent == plugins_dir else name)
    previous = record.version if record is not None and record.manifest is not None else None
    if previous is not None and _older(version, previous):
        raise PluginError(f"installing {name} {version} from {path} refused: it is older than the installed "
                          f"{previous} (downgrades are not allowed; uninstall first)")

    decision = trust.decide(policy, path, "user", name, version, location=target)
    warnings: list[str] = []
    replaced = (trust.provenance(record.path, record.source, name, previous or "")
                if record is not None and previous is not None else None)
    replaces_signed = replaced is not None and replaced.kind == trust.SIGNED and record.path != path
    replaced_key = replaced.key_id if replaced is not None else None
    if policy.require_signature:
        if replaces_signed and decision.provenance.kind != trust.SIGNED:
            raise PluginError(
                f"installing {name} {version} from {path} refused: it would replace {name} {previous}, installed "
                f"from a bundle signed by key {replaced_key}, with unsigned code, and the policy requires "
                f"signatures ({policy.where()}); install the signed bundle of the new version instead")
        if decision.refusal:
            raise PluginError(
                f"installing {name} from {path} refused: the policy requires signatures ({policy.where()}) and a "
                f"plugin folder is unsigned; install its signed .crmplugin bundle instead (for development, "
                f"the admin can list {target} in allowUnsignedFrom)")
    elif replaces_signed and decision.provenance.kind != trust.SIGNED:
        warnings.append(f"replaces {name} {previous}, signed by key {replaced_key}, with unsigned code")
    if decision.provenance.kind != trust.SIGNED:
        warnings.append("a plugin folder is unsigned: nobody vouches for its code but you")

    granted = set(manifest.permissions) | set(policy.grants_for(name))
    findings = static_checks.scan_plugin(path, granted)
    if policy.strict_static_checks and static_checks.has_errors(findings):
        errors = [f for f in findings if f.severity == static_checks.ERROR]
        raise PluginError(f"installing {name} from {path} refused by the strict policy: {len(errors)} static-check "
                          f"error(s), first: {errors[0]}")
    denied = [p for p in manifest.permissions if not policy.permits(p)]
    if denied:
        warnings.append(f"the policy denies {', '.join(denied)}; the plugin will run without them")
    try:
        raw = loads_bounded((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    return FolderInstallPlan(
        source=path, target=target, name=name, version=version, previous_version=previous,
        publisher=decision.publisher, permissions=list(manifest.permissions), findings=findings,
        manifest=raw if isinstance(raw, dict) else {}, warnings=warnings,
    )
