"""Plugin distribution, client side: install what the admin published, remove what they withdrew.

Runs at the end of a sync, after the pull (:meth:`crm_desktop.sync.engine.SyncEngine.sync`):

1. ``GET /api/v1/plugins``: the published bundles and the organisation's plugin policy. The
   policy is written to ``<home>/org-policy.json``; :func:`~crm_desktop.plugin_host.policy.load_policy`
   applies it on top of the local (system + user) policy and it can only tighten it.
2. Each published plugin the effective policy lets run and that is not installed at that version
   is downloaded, checked against the listed sha256, and installed through the **same verified
   path as a local bundle** (:func:`crm_desktop.plugin_host.bundle.stage_bundle` then
   :meth:`~crm_desktop.plugin_host.bundle.StagedBundle.commit`): signature verified before the zip
   is opened, entry and size checks, file list, manifest, no downgrade, static checks, staging
   folder and an atomic rename. On top of a local install, a server bundle must be signed by a key
   **this computer's policy trusts**, whatever ``requireSignature`` says: the server is a
   distribution channel, not a trust anchor.
3. No plugin code runs here: there is no ``post_install`` (the CLI's local install activates the
   plugin headless; this path does not). The running app's plugin host loads what changed when the
   sync finishes (:func:`apply_to_host`); otherwise plugins load at the next start.
4. A plugin this client installed from this server (``origin`` in its install record) that is no
   longer published is removed: its folder goes, its data (tables, settings, ``plugin-data/<name>``)
   stays, as ``crm-desktop plugin uninstall NAME`` without ``--drop-data``. Plugins installed
   locally are never removed by a sync.
5. ``POST /api/v1/plugins/report``: each published plugin with ``installed`` (its version) or
   ``refused``/``failed`` (the reason), for the admin console.

Blocked by the organisation (or left out of its ``allowed`` list): not installed, and if it is
already installed it stays on disk but the host refuses to load it (listed as blocked with the
reason), so unblocking it brings it back without a download and with its data.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from crm_desktop.errors import CrmError
from crm_desktop.plugin_host import bundle as bundles
from crm_desktop.plugin_host import policy as policies
from crm_desktop.sync.protocol import PluginList, PluginReport, PluginReportItem, PluginState

log = logging.getLogger(__name__)

#: Key of the install record (``CRMPLUGIN-INSTALL.json``) naming where a plugin was installed from.
ORIGIN_KEY = "origin"


@dataclass
class PluginSyncReport:
    """The ``plugins`` section of ``crm-desktop sync --json``."""

    installed: list[dict] = field(default_factory=list)
    updated: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def changed(self) -> bool:
        return bool(self.installed or self.updated or self.removed)


def read_install_record(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / bundles.INSTALL_RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def server_origin(folder: Path) -> str | None:
    """The server URL a plugin folder was installed from by sync, or None (installed locally)."""
    record = read_install_record(folder) or {}
    origin = record.get(ORIGIN_KEY)
    return origin.get("server") if isinstance(origin, dict) else None


class PluginSync:
    """Applies the server's published plugins to one home's ``plugins`` folder."""

    def __init__(self, home: Any, server_url: str):
        self.home = home
        self.server_url = server_url
        self.plugins_dir = Path(home.plugins_dir)

    def run(self, client) -> PluginSyncReport:
        report = PluginSyncReport()
        listing = client.plugins()
        self._write_org_policy(listing)
        items: list[PluginReportItem] = []
        try:
            effective = policies.load_policy(self.home.policy_path)
        except policies.PolicyError as exc:
            # fail closed: an unreadable policy installs nothing
            reason = f"the plugin policy is unreadable: {exc}"
            for p in listing.plugins:
                report.refused.append({"name": p.name, "version": p.version, "reason": reason})
                items.append(PluginReportItem(name=p.name, version=p.version, state=PluginState.REFUSED,
                                              reason=reason[:1000]))
            self._report(client, items, report)
            return report
        published = {p.name for p in listing.plugins}
        with tempfile.TemporaryDirectory(prefix="crm-plugin-sync-") as tmp:
            for p in listing.plugins:
                items.append(self._one(client, p, effective, Path(tmp), report))
        self._remove_withdrawn(published, report)
        for name in listing.policy.required:
            if name not in published:
                report.errors.append(f"the organisation requires plugin {name!r}, but the server does not publish it")
        self._report(client, items, report)
        return report

    # -- one published plugin ---------------------------------------------------------------

    def _one(self, client, p, effective: policies.Policy, tmp: Path, report: PluginSyncReport) -> PluginReportItem:
        def refuse(reason: str, state: PluginState = PluginState.REFUSED) -> PluginReportItem:
            report.refused.append({"name": p.name, "version": p.version, "reason": reason})
            log.warning("published plugin %s %s %s: %s", p.name, p.version, state.value, reason)
            return PluginReportItem(name=p.name, version=p.version, state=state, reason=reason[:1000])

        refusal = effective.refusal(p.name)
        if refusal:
            return refuse(refusal)
        target = self.plugins_dir / p.name
        current = bundles.installed_version(self.plugins_dir, p.name)
        record = read_install_record(target) if current is not None else None
        if current == p.version and record and record.get("sha256") == p.sha256:
            if server_origin(target) is None:  # installed from the same bundle by hand: now managed by sync
                self._set_origin(target, record, p.sha256)
            report.unchanged.append({"name": p.name, "version": p.version})
            return PluginReportItem(name=p.name, version=p.version, state=PluginState.INSTALLED)
        if current is not None:
            try:
                if Version(p.version) < Version(current):
                    return refuse(f"{p.name} {p.version} is older than the installed {current} "
                                  f"(downgrades are not allowed)")
                if Version(p.version) == Version(current):
                    return refuse(f"{p.name} {current} is installed from a different bundle than the published one")
            except InvalidVersion:
                pass
        try:
            data = client.plugin_bundle(p.name)
        except CrmError as exc:
            return refuse(f"download failed: {exc}", PluginState.FAILED)
        if sha256(data).hexdigest() != p.sha256:
            return refuse("the downloaded bundle does not match the published sha256 (altered in transit or "
                          "on the server)")
        folder = tmp / p.name
        folder.mkdir()
        bundle_path = folder / f"{p.name}-{p.version}{bundles.BUNDLE_SUFFIX}"
        bundle_path.write_bytes(data)
        sig_path = folder / (bundle_path.name + ".sig")
        sig_path.write_text(json.dumps(p.signature), encoding="utf-8")
        try:
            staged = bundles.stage_bundle(bundle_path, self.plugins_dir, effective, sig_path=sig_path,
                                          manifest_validator=_manifest_validator())
        except CrmError as exc:
            return refuse(_short(str(exc)))
        with staged:
            plan = staged.plan
            if plan.name != p.name or plan.version != p.version:
                return refuse(f"the bundle is {plan.name} {plan.version}, not the published {p.name} {p.version}")
            if plan.signature is None:
                return refuse("the bundle is unsigned; plugins from the server must be signed by a key "
                              "this computer's policy trusts")
            if not plan.signature.trusted:
                return refuse(f"signed by key {plan.signature.key_id}, which this computer's policy does not trust "
                              f"(add the key to trustedKeys in the policy to accept it)")
            record_path = staged.staging / bundles.INSTALL_RECORD_NAME
            record = json.loads(record_path.read_text(encoding="utf-8"))
            record[ORIGIN_KEY] = {"server": self.server_url, "sha256": p.sha256, "publishedAt": p.published_at}
            record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            try:
                result = staged.commit()  # no post_install: no plugin code runs in the sync path
            except CrmError as exc:
                return refuse(_short(str(exc)), PluginState.FAILED)
        entry = {"name": p.name, "version": p.version}
        if result.previous_version:
            report.updated.append({**entry, "previous": result.previous_version})
        else:
            report.installed.append(entry)
        return PluginReportItem(name=p.name, version=p.version, state=PluginState.INSTALLED)

    def _set_origin(self, folder: Path, record: dict, sha: str) -> None:
        record[ORIGIN_KEY] = {"server": self.server_url, "sha256": sha}
        path = folder / bundles.INSTALL_RECORD_NAME
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    # -- withdrawn ----------------------------------------------------------------------------

    def _remove_withdrawn(self, published: set[str], report: PluginSyncReport) -> None:
        if not self.plugins_dir.is_dir():
            return
        for folder in sorted(self.plugins_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir() or folder.name in published:
                continue
            if server_origin(folder) != self.server_url:
                continue  # installed locally (or from another server): never removed by sync
            version = bundles.installed_version(self.plugins_dir, folder.name)
            # like `plugin uninstall NAME` without --drop-data: tables, settings and plugin-data/NAME stay
            aside = self.plugins_dir / f".failed-{folder.name}-withdrawn"
            try:
                folder.rename(aside)
            except OSError as exc:
                report.errors.append(f"cannot remove withdrawn plugin {folder.name}: {exc}")
                continue
            shutil.rmtree(aside, ignore_errors=True)
            report.removed.append({"name": folder.name, "version": version})
            log.info("removed plugin %s %s: withdrawn by the admin (its data is kept)", folder.name, version)

    # -- policy and report --------------------------------------------------------------------

    def _write_org_policy(self, listing: PluginList) -> None:
        doc = {**listing.policy.model_dump(mode="json"), "server": self.server_url}
        path = policies.org_policy_path(self.home.policy_path)
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    def _report(self, client, items: list[PluginReportItem], report: PluginSyncReport) -> None:
        try:
            client.report_plugins(PluginReport(plugins=items[:500]))
        except CrmError as exc:
            report.errors.append(f"could not report plugin states to the server: {exc}")


def _manifest_validator():
    from crm_desktop.plugin_host.manifest import read_manifest

    return read_manifest


def _short(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def apply_to_host(host: Any, report: PluginSyncReport | dict) -> list[str]:
    """Let a running plugin host pick up what a sync changed, live; returns problems, one line each.

    Installed and updated plugins are (re)loaded with ``host.activate_installed`` (the host's
    load-time checks run again before any code); removed ones are unloaded with
    ``host.uninstall`` (the folder is already gone, data is kept). Call on the host's thread.
    """
    data = report.as_dict() if isinstance(report, PluginSyncReport) else dict(report or {})
    problems: list[str] = []
    if not (data.get("installed") or data.get("updated") or data.get("removed")):
        return problems
    try:  # the organisation layer may have changed with this sync; it only tightens
        host.policy = policies.load_home_policy(host.home)
    except policies.PolicyError as exc:
        problems.append(f"plugin policy: {exc}")
    plugins_dir = Path(host.home.plugins_dir)
    for entry in data.get("installed", []) + data.get("updated", []):
        try:
            host.activate_installed(plugins_dir / entry["name"])
        except Exception as exc:  # one plugin never stops the others
            problems.append(f"{entry['name']}: {exc}")
    for entry in data.get("removed", []):
        try:
            if entry["name"] in host.records:
                host.uninstall(entry["name"])
        except Exception as exc:
            problems.append(f"{entry['name']}: {exc}")
    return problems
