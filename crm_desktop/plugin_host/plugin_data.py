"""A plugin's data in the app's database: migrating its tables, publishing its synced tables, dropping them.

:class:`PluginData` is the part of the plugin host that touches the database for a plugin
(the rest of the host reads files and runs plugin code). None of it runs plugin code or
touches Qt, so the admin panel runs it on its writer thread:

* :meth:`PluginData.migrate` brings the plugin's own tables to the newest revision of its
  ``migrations`` folder, in one write transaction, rolled back alone on failure.
* The host loads a plugin right after such a migration on another thread (the GUI thread). So
  that the load does not read the plugin's migration version again there, :meth:`migrate`
  remembers what it did (the migrations folder's fingerprint, and the error if it failed), and
  :meth:`ensure_migrated` (or :meth:`needs_migration`) takes that answer once instead of asking
  the database. A folder changed in between has another fingerprint and is migrated again.
* At start-up (and any load the admin panel did not prepare) the registry asks
  :meth:`needs_migration` on the GUI thread (files only) and, in the app, runs :meth:`upgrade`
  on the writer before the plugin's code is imported.
* :meth:`publish_synced_tables` tells sync about a loading plugin's synced models; in the app
  the registry runs it on the writer between the plugin's import and its activation.
* :meth:`drop` backs the database up and drops the plugin's tables; :meth:`forget` also
  deletes its settings and data folder (uninstall with "delete data").
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from crm_desktop.paths import Home
from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_api.models import table_prefix
from crm_desktop.plugin_host.manifest import Manifest
from crm_desktop.plugin_host.settings_store import SettingsStore

log = logging.getLogger(__name__)


def tables_of(db_path: Path) -> set[str]:
    """The names of the tables in the SQLite database at ``db_path``."""
    conn = sqlite3.connect(db_path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def migrations_fingerprint(manifest: Manifest, folder: Path) -> str:
    """What a plugin's migrations are now: its ident and every file of its migrations folder
    (path relative to the folder, size, modification time). Independent of where the folder
    lies, so a folder migrated in a staging place and then renamed keeps it."""
    digest = hashlib.sha256(manifest.ident.encode())
    root = Path(folder) / (manifest.migrations or "")
    if manifest.migrations and root.is_dir():
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            stat = path.stat()
            digest.update(f"\0{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class PluginData:
    """The database side of plugins for one core and home (see the module docstring)."""

    def __init__(self, core: Any, home: Home, settings: SettingsStore):
        self.core = core
        self.home = home
        self.settings = settings
        # plugin ident -> (fingerprint of the migrations migrated, error or None); taken once by the load
        self._done: dict[str, tuple[str, str | None]] = {}
        self._done_lock = threading.Lock()

    @property
    def db_path(self) -> Path:
        return Path(self.home.db_path)

    def tables(self) -> set[str]:
        """The tables of the app's database now."""
        return tables_of(self.db_path)

    # ------------------------------------------------------------------ migrations

    def migrate(self, manifest: Manifest, folder: Path) -> None:
        """Bring ``manifest``'s tables to the head of ``folder``'s migrations in one transaction;
        raises (after a rollback of only that) on failure. Remembers the outcome for the next load."""
        fingerprint = migrations_fingerprint(manifest, folder)
        self.upgrade(manifest, folder)
        with self._done_lock:
            self._done[manifest.ident] = (fingerprint, None)

    def remember_failure(self, manifest: Manifest, folder: Path, error: str) -> None:
        """The migration of ``folder`` failed on the writer: the next load of it says so instead of retrying."""
        with self._done_lock:
            self._done[manifest.ident] = (migrations_fingerprint(manifest, folder), error)

    def forget_outcome(self, manifest: Manifest) -> None:
        """Drop what :meth:`migrate` remembered (its tables were dropped)."""
        with self._done_lock:
            self._done.pop(manifest.ident, None)

    def ensure_migrated(self, manifest: Manifest, folder: Path) -> None:
        """Before a load: migrate, unless :meth:`migrate` just did so for these very migrations (then
        the database is not asked again; a failure it remembered is raised as a :class:`PluginError`)."""
        if self.needs_migration(manifest, folder):
            self.upgrade(manifest, folder)

    def needs_migration(self, manifest: Manifest, folder: Path) -> bool:
        """Before a load, without asking the database: False when the plugin has no migrations or
        :meth:`migrate` just migrated these very migrations (its answer is taken; a failure it
        remembered is raised as a :class:`PluginError`); True when :meth:`upgrade` must run. The
        registry asks this on the GUI thread and, with a writer, runs :meth:`upgrade` there."""
        if not manifest.migrations:
            return False
        with self._done_lock:
            done = self._done.pop(manifest.ident, None)
        if done is not None and done[0] == migrations_fingerprint(manifest, folder):
            if done[1] is not None:
                raise PluginError(done[1])
            return False
        return True

    def upgrade(self, manifest: Manifest, folder: Path) -> None:
        """Bring ``manifest``'s tables to the head of ``folder``'s migrations in one transaction, rolled
        back alone on failure (raised); unlike :meth:`migrate`, nothing is remembered for a later load."""
        if not manifest.migrations:
            return
        from crm_desktop.storage import migrate

        db = getattr(self.core, "db", None)
        if db is not None and db.current_transaction() is not None:
            # the migration needs the write lock this thread holds: it would wait out the busy timeout
            raise PluginError("its tables cannot be migrated inside an open write transaction")
        db_path = self.db_path
        version_table = f"alembic_version_{manifest.ident}"
        prefix = table_prefix(manifest.name)
        before = tables_of(db_path)

        def only_its_tables(connection: Any) -> None:
            now = {r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
            foreign = sorted(t for t in now - before if not t.startswith(prefix) and t != version_table)
            if foreign:
                raise PluginError(f"its migrations created table(s) {', '.join(foreign)} not prefixed with {prefix!r}")

        # one transaction, rolled back alone on failure: no whole-file backup put back under the running
        # app (edits made meanwhile would be lost), no half-applied plugin tables left behind
        migrate.upgrade_in_one_transaction(db_path, script_location=Path(folder) / manifest.migrations,
                                           version_table=version_table, label=f"plugin-{manifest.name}",
                                           check=only_its_tables)

    # ------------------------------------------------------------------ synced tables

    def publish_synced_tables(self, name: str, manifest: Manifest) -> None:
        """Tell sync about the plugin's synced models (plugin_api.models.SyncedModel): their entity,
        table and JSON schema are kept in the database, so sync pushes and pulls their rows even
        when the plugin is not loaded; changes pulled for them before it was installed are applied.
        Needs the plugin's models, so it runs after its code was imported, and before its ctx exists;
        in the app on the writer thread (``PluginHost.set_writer``), on the command line inline."""
        from crm_desktop.plugin_api.models import synced_models
        from crm_desktop.storage import plugin_sync
        from crm_desktop.sync.applier import publish_plugin_tables

        models = synced_models(name)
        db = getattr(self.core, "db", None)
        if not models or db is None:
            return
        tables = plugin_sync.tables_of(models, name, manifest.version)
        existing = self.tables()
        missing = sorted(t.table for t in tables if t.table not in existing)
        if missing:
            raise PluginError(f"synced model table(s) {', '.join(missing)} do not exist: add them to the "
                              f"plugin's migrations")
        applied = publish_plugin_tables(db, tables)
        if applied:
            log.info("plugin %s: applied %d change(s) pulled before it was installed", name, applied)

    # ------------------------------------------------------------------ dropping

    def drop(self, manifest: Manifest, other_plugins: Iterable[str]) -> Path | None:
        """Back up the database, then drop the plugin's tables and version table; returns the backup.

        ``other_plugins``: the names of the other plugins the host knows, whose tables may share
        the prefix (``notes`` and ``notes-extra``) and are kept."""
        from crm_desktop.storage.migrate import backup_database

        db_path = self.db_path
        prefix = table_prefix(manifest.name)
        others = tuple(table_prefix(n) for n in other_plugins
                       if n != manifest.name and table_prefix(n).startswith(prefix))
        existing = tables_of(db_path)
        tables = sorted(t for t in existing if t.startswith(prefix) and not t.startswith(others))
        version_table = f"alembic_version_{manifest.ident}"
        if version_table in existing:
            tables.append(version_table)
        self.forget_outcome(manifest)
        if not tables:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = backup_database(db_path, Path(self.home.backups_dir) /
                                 f"{db_path.stem}-{stamp}-before-uninstall-{manifest.name}.sqlite3")
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("PRAGMA foreign_keys=OFF")
            with conn:
                for table in tables:
                    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
                # sync forgets its synced tables (pulled changes for them are parked again, not lost)
                if "sync_plugin_tables" in existing:
                    conn.execute("DELETE FROM sync_plugin_tables WHERE plugin = ?", (manifest.name,))
        finally:
            conn.close()
        log.info("dropped %s of plugin %s (backup %s)", ", ".join(tables), manifest.name, backup)
        return backup

    def forget(self, manifest: Manifest, other_plugins: Iterable[str]) -> Path | None:
        """:meth:`drop`, then delete the plugin's settings and its data folder; returns the backup."""
        backup = self.drop(manifest, other_plugins)
        self.settings.forget(manifest)
        shutil.rmtree(Path(self.home.plugin_data_dir) / manifest.name, ignore_errors=True)
        return backup
