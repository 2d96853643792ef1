"""Where a plugin's code came from, and whether ``requireSignature`` lets it run (issue 8, section 3).

The signature is checked when a bundle is installed; the installer keeps the
bundle's file list (``CRMPLUGIN-FILES.json``) and an install record
(``CRMPLUGIN-INSTALL.json``, with the publisher key and the signature itself)
in the plugin's folder. At every load the host asks this module what the
folder is:

``first-party``
    A plugin in the application's own ``plugins/`` folder. It ships inside
    the application and is trusted as part of it: whoever can change those
    files can change the application's code too. The policy can still block
    it by name (``blockedPlugins``, ``allowedPlugins``).
``signed``
    Installed from a bundle whose signature verified: the kept signature
    verifies again for the manifest's name and version, with the kept key.
    It counts under ``requireSignature`` only while the policy trusts that
    key; its files are compared with the kept file list before import
    (:mod:`crm_desktop.plugin_host.integrity`).
``unsigned``
    Anything else: a folder copied, scaffolded or installed "from folder",
    or a bundle installed unsigned while the policy allowed it.

Under ``requireSignature`` an unsigned plugin runs only from a folder the
policy lists in ``allowUnsignedFrom``; otherwise it is blocked with a reason
that says what to do. No Qt here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crm_desktop.plugin_host.json_files import loads_bounded
from crm_desktop.plugin_host.bundle import FILE_LIST_NAME, INSTALL_RECORD_NAME
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.signing import key_id as key_id_of
from crm_desktop.plugin_host.signing import SignatureError, signature_verifies

FIRST_PARTY = "first-party"
SIGNED = "signed"
UNSIGNED = "unsigned"

_MAX_RECORD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Provenance:
    """What a plugin folder says about where its code came from."""

    kind: str  # FIRST_PARTY, SIGNED or UNSIGNED
    key_id: str | None = None
    public_key: str | None = None
    #: Why an install record that claims a signature does not count (tampered, mismatched), else None.
    problem: str | None = None

    def publisher(self, policy: Policy | None = None) -> str:
        """One line for the admin: who vouches for this code (and, given a policy, whether it trusts them)."""
        if self.kind == FIRST_PARTY:
            return "first-party (ships with the app)"
        if self.kind == SIGNED:
            if policy is None:
                return f"key {self.key_id}"
            trust = "trusted" if policy.is_trusted(self.public_key or "") else "not trusted by the policy"
            return f"key {self.key_id} ({trust})"
        return "unsigned"


@dataclass(frozen=True)
class TrustDecision:
    """A plugin's provenance and, under ``requireSignature``, why it may not load (``refusal``)."""

    provenance: Provenance
    refusal: str | None
    publisher: str


def _read_record(folder: Path) -> dict[str, Any] | None:
    path = folder / INSTALL_RECORD_NAME
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            return {}
        doc = loads_bounded(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def provenance(folder: str | os.PathLike[str], source: str, name: str, version: str) -> Provenance:
    """Where the plugin in ``folder`` (manifest ``name`` and ``version``) came from; never raises."""
    if source == "bundled":
        return Provenance(FIRST_PARTY)
    folder = Path(folder)
    record = _read_record(folder)
    if record is None:
        return Provenance(UNSIGNED)
    if record == {}:
        return Provenance(UNSIGNED, problem=f"its install record {INSTALL_RECORD_NAME} is unreadable")
    public_key = record.get("publicKey")
    if not public_key:
        return Provenance(UNSIGNED)  # installed from an unsigned bundle
    try:
        kid = key_id_of(public_key)
    except SignatureError:
        return Provenance(UNSIGNED, problem="its install record names no valid publisher key")
    if not (folder / FILE_LIST_NAME).is_file():
        return Provenance(UNSIGNED, key_id=kid, public_key=public_key,
                          problem=f"its bundle file list {FILE_LIST_NAME} is missing")
    if (record.get("name"), record.get("version")) != (name, version):
        return Provenance(UNSIGNED, key_id=kid, public_key=public_key,
                          problem=f"it was installed as {record.get('name')} {record.get('version')}, "
                                  f"but its plugin.json now says {name} {version}")
    if not signature_verifies(public_key, name, version, str(record.get("sha256") or ""),
                              str(record.get("signature") or "")):
        return Provenance(UNSIGNED, key_id=kid, public_key=public_key,
                          problem="the signature kept in its install record does not verify "
                                  "(installed by an older version, or altered)")
    return Provenance(SIGNED, key_id=kid, public_key=public_key)


def decide(policy: Policy, folder: str | os.PathLike[str], source: str, name: str, version: str,
           *, location: str | os.PathLike[str] | None = None) -> TrustDecision:
    """Whether the plugin in ``folder`` may load under ``policy``.

    ``location`` is where the folder will live if it differs from ``folder``
    (a folder about to be copied into ``<home>/plugins``): ``allowUnsignedFrom``
    is matched against it.
    """
    prov = provenance(folder, source, name, version)
    location = Path(location) if location is not None else Path(folder)
    exemption = policy.unsigned_exemption(location) if policy.require_signature else None
    publisher = prov.publisher(policy)
    if prov.kind == UNSIGNED and exemption is not None:
        publisher = f"unsigned (allowed by allowUnsignedFrom: {exemption})"
    if not policy.require_signature or prov.kind == FIRST_PARTY or exemption is not None:
        return TrustDecision(prov, None, publisher)
    if prov.kind == SIGNED and policy.is_trusted(prov.public_key or ""):
        return TrustDecision(prov, None, publisher)
    where = policy.where()
    if prov.kind == SIGNED:
        why = f"its bundle was signed by key {prov.key_id}, which the policy does not trust"
    elif prov.problem:
        why = prov.problem
    else:
        why = "it was not installed from a signed bundle"
    return TrustDecision(prov, (
        f"plugin {name!r} is blocked: the policy requires signatures ({where}) and {why}; "
        f"install its signed .crmplugin bundle, or, for development, list its folder in allowUnsignedFrom"
    ), publisher)
