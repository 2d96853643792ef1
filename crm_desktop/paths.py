"""Where crm-desktop keeps its files.

`<home>` is the platformdirs user data folder, unless ``--home DIR`` or the
``CRM_DESKTOP_HOME`` environment variable says otherwise (DESIGN.md, Plugins).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HOME_ENV = "CRM_DESKTOP_HOME"
APP_NAME = "crm-desktop"


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

    def ensure(self) -> "Home":
        """Create the folder layout (idempotent)."""
        for folder in (self.root, self.plugins_dir, self.plugin_data_dir, self.backups_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
