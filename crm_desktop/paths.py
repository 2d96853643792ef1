"""Where crm-desktop keeps its files, and where it finds the files it ships with.

`<home>` is the platformdirs user data folder, unless ``--home DIR`` or the
``CRM_DESKTOP_HOME`` environment variable says otherwise (DESIGN.md, Plugins).

:func:`shipped_dir` finds the folders the app ships beside its code
(``plugins/``, ``resources/``, ``migrations/``) both in a source checkout and
in the frozen (PyInstaller) build.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HOME_ENV = "CRM_DESKTOP_HOME"
APP_NAME = "crm-desktop"

#: The folders that ship with the app, beside the ``crm_desktop`` package.
SHIPPED_FOLDERS = ("plugins", "resources", "migrations")


def shipped_dir(name: str) -> Path | None:
    """The shipped folder ``name`` (one of :data:`SHIPPED_FOLDERS`), or None if this install lacks it.

    Looked for, first match wins:

    1. frozen (PyInstaller sets ``sys._MEIPASS``): ``<_MEIPASS>/<name>``, where
       ``packaging/crm-desktop.spec`` puts it (``dist/crm-desktop/_internal/<name>``);
    2. a source checkout: ``<repo>/<name>``, beside the ``crm_desktop`` package;
    3. inside the package: ``crm_desktop/<name>`` (an install that copies them there).

    This is the one place that knows the layout; the migrations runner, plugin
    discovery and the UI's icons all ask here.
    """
    if name not in SHIPPED_FOLDERS:
        raise ValueError(f"{name!r} is not a shipped folder: must be one of {', '.join(SHIPPED_FOLDERS)}")
    package_dir = Path(__file__).resolve().parent
    candidates = [package_dir.parent / name, package_dir / name]
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        candidates.insert(0, Path(frozen) / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@dataclass(frozen=True)
class Home:
    """The folder holding one user's database, plugins, settings and backups."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> "Home":
        """The home from ``--home``, else ``CRM_DESKTOP_HOME``, else the platform folder."""
        if explicit:
            root = Path(explicit)
        elif os.environ.get(HOME_ENV):
            root = Path(os.environ[HOME_ENV])
        else:
            root = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        return cls(root.expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.root / "crm.sqlite3"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def plugin_data_dir(self) -> Path:
        return self.root / "plugin-data"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.json"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def owned_paths(self) -> list[Path]:
        """Files and folders only crm-desktop writes: no command may write a user file over them
        (see :func:`crm_desktop.files.atomic_output`)."""
        db = str(self.db_path)
        return [self.db_path, *(Path(db + s) for s in ("-wal", "-shm", "-journal")), self.backups_dir,
                self.plugins_dir, self.plugin_data_dir, self.root / "plugin-settings", self.log_dir,
                self.settings_path, self.policy_path, self.root / "plugins-state.json", self.root / "ui.ini"]

    def check(self) -> "Home":
        """Raise a one-line :class:`~crm_desktop.errors.CrmError` if the home cannot be a folder."""
        from crm_desktop.errors import CrmError

        for folder in (self.root, *self.root.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise CrmError(f"home {self.root}: {folder} is a file, not a folder "
                                   f"(check --home / {HOME_ENV})")
                break
        return self

    def ensure(self) -> "Home":
        """Create the folder layout (idempotent); a one-line error if it cannot be made."""
        from crm_desktop.errors import CrmError

        self.check()
        for folder in (self.root, self.plugins_dir, self.plugin_data_dir, self.backups_dir, self.log_dir):
            if folder.is_dir():
                continue
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from crm_desktop.files import describe_os_error

                raise CrmError(f"home {self.root}: cannot create {folder}: {describe_os_error(exc)} "
                               f"(check --home / {HOME_ENV})") from None
        return self
