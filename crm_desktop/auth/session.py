"""Signing in, keeping the access token fresh, signing out.

The server's refresh tokens are single use: each refresh answers a new one and
the old one stops working (using it again signs the device out). So the new
pair is written to the keyring before anything else is done with it, and a
process reuses a stored access token while it is valid instead of refreshing.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from crm_desktop.auth.credentials import CredentialStore, Tokens
from crm_desktop.errors import CrmError
from crm_desktop.sync.http import ServerRefused, Transport
from crm_desktop.sync.protocol import LoginRequest, LogoutRequest, RefreshRequest, TokenPair

log = logging.getLogger(__name__)


class SignedOut(CrmError):
    """No valid sign-in: run ``crm-desktop login`` (the message says why)."""


class AuthSession:
    """Access tokens for one sign-in, refreshed (and rotated) when needed. Thread-safe."""

    def __init__(self, transport: Transport, store: CredentialStore):
        self.transport = transport
        self.store = store
        self._lock = threading.Lock()
        self._tokens: Tokens | None = None

    def login(self, username: str, password: str, device_id: str) -> TokenPair:
        body = LoginRequest(username=username, password=password, device_id=device_id,
                            device_name=socket.gethostname()[:200])
        try:
            response = self.transport.request("POST", "/auth/login", json=body.model_dump())
        except ServerRefused as exc:
            raise SignedOut(f"sign-in refused: {exc.detail}") from None
        pair = TokenPair.model_validate(response.json())
        self._keep(pair)
        return pair

    def access_token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if self._tokens is None:
                self._tokens = self.store.load()
            if self._tokens is None:
                raise SignedOut("not signed in: run `crm-desktop login --server URL --user NAME`")
            if force_refresh or not self._tokens.access_valid():
                self._refresh()
            return self._tokens.access_token  # type: ignore[return-value]

    def _refresh(self) -> None:
        assert self._tokens is not None
        try:
            response = self.transport.request(
                "POST", "/auth/refresh", json=RefreshRequest(refresh_token=self._tokens.refresh_token).model_dump())
        except ServerRefused as exc:
            if exc.status in (401, 403):
                raise SignedOut(f"signed out by the server: {exc.detail}; run `crm-desktop login` again") from None
            raise
        self._keep(TokenPair.model_validate(response.json()))

    def _keep(self, pair: TokenPair) -> None:
        tokens = Tokens(pair.refresh_token, pair.access_token, time.time() + pair.expires_in)
        self.store.save(tokens)  # first: the old refresh token is already spent
        self._tokens = tokens

    def logout(self) -> None:
        """Revoke the session on the server when reachable; forget the tokens in any case."""
        try:
            tokens = self.store.load()
            if tokens is not None:
                token = tokens.access_token if tokens.access_valid() else None
                if token is None:
                    self._tokens = tokens
                    self._refresh()
                    token = self._tokens.access_token
                self.transport.request("POST", "/auth/logout", token=token,
                                       json=LogoutRequest(refresh_token=self._tokens.refresh_token
                                                          if self._tokens else None).model_dump())
        except CrmError as exc:
            log.info("signing out on the server failed (%s); the tokens are forgotten here anyway", exc)
        finally:
            self.store.delete()
            self._tokens = None
