"""A keyring backend for subprocess tests only: one JSON file outside the home, named by
``CRM_TEST_KEYRING_FILE``. It lets a ``crm-desktop sync`` child process (killed with -9 in the
crash tests) find the token its parent stored. Never used by the app."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class TestFileKeyring(KeyringBackend):
    priority = 1

    def _path(self) -> Path:
        return Path(os.environ["CRM_TEST_KEYRING_FILE"])

    def _load(self) -> dict:
        try:
            return json.loads(self._path().read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save(self, data: dict) -> None:
        tmp = self._path().with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path())

    def get_password(self, service, username):
        return self._load().get(f"{service}\n{username}")

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}\n{username}"] = password
        self._save(data)

    def delete_password(self, service, username):
        data = self._load()
        if data.pop(f"{service}\n{username}", None) is None:
            raise PasswordDeleteError(username)
        self._save(data)
