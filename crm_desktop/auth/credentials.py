"""Tokens in the OS keyring (``keyring``), never in a plain file.

One keyring entry per home's sign-in: service ``crm-desktop``, user
``<server URL> <username> <device id>``, holding a small JSON document with the
refresh token and the current access token and its expiry. Keeping the access
token lets a new process (``crm-desktop sync`` from a timer) use it until it
expires instead of rotating the refresh token on every run.

Backends that would write the secret to a plain file (``keyrings.alt``'s
plaintext keyring) are refused like a missing keyring.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import keyring
from keyring.errors import KeyringError, PasswordDeleteError

from crm_desktop.errors import CrmError

log = logging.getLogger(__name__)

SERVICE = "crm-desktop"

INSTALL_HINT = ("no OS keyring to keep the sign-in token in: install and unlock one (Linux: gnome-keyring or "
                "KWallet with the 'secretstorage' Python package; macOS Keychain and Windows Credential "
                "Manager work as they are)")


class KeyringMissing(CrmError):
    """No usable keyring backend: the message names what to install."""


def keyring_status(backend=None) -> str | None:
    """None when the keyring can keep secrets; otherwise one line saying what to install."""
    backend = backend or keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if name.startswith("keyring.backends.fail") or name.startswith("keyring.backends.null"):
        return INSTALL_HINT
    if "Plaintext" in name or "keyrings.alt.file" in name:
        return f"the keyring backend {name} writes secrets to a plain file, which crm-desktop refuses; {INSTALL_HINT[3:]}"
    try:
        if getattr(backend, "priority", 1) <= 0 and type(backend).__name__ != "MemoryKeyring":
            return INSTALL_HINT
    except Exception:  # some backends compute priority and raise when unusable
        return INSTALL_HINT
    return None


@dataclass
class Tokens:
    refresh_token: str
    access_token: str | None = None
    access_expires_at: float = 0.0

    def access_valid(self, margin: float = 30.0) -> bool:
        return bool(self.access_token) and time.time() < self.access_expires_at - margin


class CredentialStore:
    """The tokens of one sign-in (server, user, device) in the keyring."""

    def __init__(self, server_url: str, username: str, device_id: str, backend=None):
        self.key = f"{server_url} {username} {device_id}"
        self._backend = backend

    @property
    def backend(self):
        return self._backend or keyring.get_keyring()

    def check(self) -> None:
        problem = keyring_status(self.backend)
        if problem:
            raise KeyringMissing(problem)

    def load(self) -> Tokens | None:
        self.check()
        try:
            text = self.backend.get_password(SERVICE, self.key)
        except KeyringError as exc:
            raise KeyringMissing(f"the keyring could not be read ({exc}); {INSTALL_HINT[3:]}") from None
        if not text:
            return None
        try:
            data = json.loads(text)
            return Tokens(data["refresh_token"], data.get("access_token"), float(data.get("access_expires_at", 0)))
        except (ValueError, KeyError, TypeError):
            log.warning("the keyring entry for %s is not readable; sign in again", self.key)
            return None

    def save(self, tokens: Tokens) -> None:
        self.check()
        text = json.dumps({"refresh_token": tokens.refresh_token, "access_token": tokens.access_token,
                           "access_expires_at": tokens.access_expires_at})
        try:
            self.backend.set_password(SERVICE, self.key, text)
        except KeyringError as exc:
            raise KeyringMissing(f"the keyring refused the token ({exc}); {INSTALL_HINT[3:]}") from None

    def delete(self) -> None:
        try:
            self.backend.delete_password(SERVICE, self.key)
        except (PasswordDeleteError, KeyringError):
            pass
