"""Login, tokens and credentials in the OS keyring.

:class:`~crm_desktop.auth.credentials.CredentialStore` keeps the refresh token
(and the short-lived access token) in the keyring, never in a file;
:class:`~crm_desktop.auth.session.AuthSession` signs in, refreshes with rotation
and signs out. :func:`keyring_status` says whether a usable keyring exists.
"""

from __future__ import annotations

from crm_desktop.auth.credentials import CredentialStore, KeyringMissing, keyring_status

__all__ = ["CredentialStore", "KeyringMissing", "keyring_status"]
