"""Installing plugins into ``<home>/plugins`` (from a folder or a bundle) and uninstalling them.

An install has three steps, so that each runs where it belongs (the admin panel runs the
middle one on its writer thread, the others on the GUI thread):

1. **plan** (:meth:`PluginInstaller.plan_folder_install`, or the bundle's ``stage_bundle``):
   check the folder against the policy, the block list, the installed version and
   ``requireSignature``, and return what would happen, for the user's approval. Reads files only.
2. **prepare** (:meth:`PluginInstaller.prepare_folder_install`, :meth:`PluginInstaller.prepare_installed`):
   copy the folder into a staging folder beside its target (a bundle is moved into place by
   the bundle installer) and migrate the plugin's tables from it. Database and file work; no
   plugin code, no Qt. A failed migration of a folder is remembered: the plugin is installed
   and shows "migrating its tables failed", as it did when all of this ran in one call.
3. **finish** (:meth:`PluginInstaller.finish_folder_install`, :meth:`PluginInstaller.activate_installed`):
   unload the installed version, put the new folder in place and load it. Runs plugin code;
   asks the database nothing more (the load takes the migration's outcome from step 2).

:meth:`PluginInstaller.install_folder` does all three in one call (command line, tests).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host import discovery
from crm_desktop.plugin_host.folder_install import FolderInstallPlan, plan_folder_install
from crm_desktop.plugin_host.lifecycle import PluginRecord
from crm_desktop.plugin_host.manifest import Manifest
from crm_desktop.plugin_host.registry import PluginRegistry, core_work
from crm_desktop.plugin_host.tripwire import Tripwire
from crm_desktop.storage import health

log = logging.getLogger(__name__)


@dataclass
class PreparedFolderInstall:
    """A folder install whose copy and migration are done (step 2), waiting to be put in place."""

    plan: FolderInstallPlan
    #: the copy waiting beside ``plan.target`` (None: the folder already is the target)
    staging: Path | None
    #: why migrating its tables failed, or None
    migration_error: str | None = None

    def discard(self) -> None:
        """Remove the staging copy (the install will not be finished)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def _locked(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if health.error_kind(current) == "locked":
            return True
        current = current.__cause__ or current.__context__
    return False


class PluginInstaller:
    """Puts user plugins in place and takes them away, through the registry (module docstring)."""

    def __init__(self, registry: PluginRegistry):
        self.registry = registry

    @property
    def tripwire(self) -> Tripwire | None:
        return self.registry.tripwire

    @property
    def plugins_dir(self) -> Path:
        return Path(self.registry.home.plugins_dir)

    # ------------------------------------------------------------------ folders

    @core_work
    def plan_folder_install(self, path: Path) -> FolderInstallPlan:
        reg = self.registry
        with reg.lock:
            if reg.policy_error:
                raise PluginError(f"the plugin policy is unreadable, so nothing is installed: {reg.policy_error}")
            return plan_folder_install(Path(path), self.plugins_dir, reg.policy, reg.records.get)

    @core_work
    def prepare_folder_install(self, plan: FolderInstallPlan) -> PreparedFolderInstall:
        """Copy ``plan.source`` into a staging folder beside ``plan.target`` and migrate its tables."""
        staging: Path | None = None
        folder = plan.target
        if plan.target != plan.source:
            self.plugins_dir.mkdir(parents=True, exist_ok=True)
            # a name the bundle installer's start-up tidy-up knows: left over by a crash, it is removed
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{plan.name}-", dir=self.plugins_dir))
            try:
                shutil.copytree(plan.source, staging, ignore=shutil.ignore_patterns("__pycache__"),
                                dirs_exist_ok=True)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            folder = staging
        prepared = PreparedFolderInstall(plan, staging)
        candidate = discovery.inspect_folder(folder, "user")
        if candidate.manifest is not None and not candidate.error:
            try:
                prepared.migration_error = self._migrate(candidate.manifest, folder)
            except BaseException:
                prepared.discard()
                raise
        return prepared

    def _migrate(self, manifest: Manifest, folder: Path) -> str | None:
        """Migrate; the error if it failed. A database locked by another writer (an import) is raised
        as it is: nothing was migrated, and the admin panel's writer waits and tries again."""
        data = self.registry.data
        try:
            data.migrate(manifest, folder)
        except Exception as exc:
            if _locked(exc):
                raise
            log.warning("migrating the tables of plugin %s from %s failed: %s", manifest.name, folder, exc)
            data.remember_failure(manifest, folder, str(exc))
            return str(exc)
        return None

    @core_work
    def finish_folder_install(self, prepared: PreparedFolderInstall) -> PluginRecord:
        """Unload the installed version, put the prepared folder in place, and load it."""
        plan = prepared.plan
        reg = self.registry
        with reg.lock:
            reg.unload_with_dependents(plan.name)
            if prepared.staging is not None:
                self._swap_in(prepared.staging, plan.target, plan.name)
                prepared.staging = None
            return reg.load_folder(plan.target, plan.name)

    def _swap_in(self, staging: Path, target: Path, name: str) -> None:
        aside: Path | None = None
        if target.exists() or target.is_symlink():
            aside = target.parent / f".previous-{name}-{secrets.token_hex(4)}"
            os.rename(target, aside)
        try:
            os.rename(staging, target)
        except OSError:
            if aside is not None:
                os.rename(aside, target)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    @core_work
    def install_folder(self, path: Path, *, approve: Callable[[FolderInstallPlan], bool] | None = None
                       ) -> PluginRecord:
        with self.registry.lock:
            plan = self.plan_folder_install(path)
            if approve is not None and not approve(plan):
                raise PluginError(f"install of {plan.name} from {plan.source} cancelled; nothing changed")
            prepared = self.prepare_folder_install(plan)
            try:
                return self.finish_folder_install(prepared)
            finally:
                prepared.discard()

    # ------------------------------------------------------------------ bundles (already in place)

    def _installed_folder(self, path: Path) -> tuple[Path, Manifest]:
        path = Path(path).resolve()
        if path.parent != self.plugins_dir.resolve():
            raise PluginError(f"{path} is not in the plugins folder {self.plugins_dir}")
        candidate = discovery.inspect_folder(path, "user")
        if candidate.error or candidate.manifest is None:
            raise PluginError(candidate.error or f"{path}: no valid plugin.json")
        existing = self.registry.records.get(candidate.name)
        if existing is not None and existing.source != "user":
            raise PluginError(f"a {existing.source} plugin named {candidate.name!r} exists at {existing.path}; "
                              f"a user plugin cannot replace it")
        return path, candidate.manifest

    @core_work
    def prepare_installed(self, path: Path) -> None:
        _folder, manifest = self._installed_folder(path)
        error = self._migrate(manifest, Path(path).resolve())
        if error is not None:
            raise PluginError(f"plugin {manifest.name} {manifest.version}: migrating its tables failed: {error}")

    @core_work
    def activate_installed(self, path: Path) -> PluginRecord:
        reg = self.registry
        with reg.lock:
            folder, manifest = self._installed_folder(path)
            reg.unload_with_dependents(manifest.name)
            return reg.load_folder(folder, manifest.name)

    # ------------------------------------------------------------------ uninstalling

    @core_work
    def uninstall(self, name: str, drop_data: bool = False) -> None:
        from crm_desktop.plugin_host.lifecycle import PluginState

        reg = self.registry
        with reg.lock:
            record = reg.record(name)
            if record.source != "user":
                raise PluginError(f"plugin {name!r} is {record.source} ({record.path}); "
                                  f"it can be disabled, not uninstalled")
            for dependent in reversed(reg.active_dependents(name)):
                reg.teardown(dependent)
                reg.set_state(dependent, PluginState.ERROR, f"needs plugin {name!r}, which was uninstalled")
            reg.teardown(name)
            if drop_data and record.manifest is not None:
                reg.data.forget(record.manifest, list(reg.records))
            shutil.rmtree(record.path, ignore_errors=True)
            del reg.records[name]
            reg.state_file.set_enabled(name)
            reg.notify(name, "state_changed")
