"""Sync for one home: sign in, sign out, sync, status. Qt-free; the CLI and the UI worker use it.

The home is bound to the first account that signs in (server URL and user);
signing it in to another server or as another user is refused, so the data of
two accounts never mix in one database.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from crm_desktop.auth.credentials import CredentialStore
from crm_desktop.auth.session import AuthSession, SignedOut
from crm_desktop.domain.actor import Actor
from crm_desktop.storage.engine import Database
from crm_desktop.sync import engine as sync_engine
from crm_desktop.sync import state
from crm_desktop.sync.client import SyncClient
from crm_desktop.sync.http import Transport
from crm_desktop.sync.outbox import OutboxWriter, install_outbox  # noqa: F401  (kept importable from here)
from crm_desktop.sync.state import Account, actor_for  # noqa: F401  (kept importable from here)

log = logging.getLogger(__name__)


class SyncService:
    """Sync of one database; ``keyring_backend`` only for tests (default: the OS keyring)."""

    def __init__(self, db: Database, *, keyring_backend=None, transport_factory: Callable[[str], Transport] = Transport,
                 home=None, plugin_sync: Callable[[Any, str], Any] | None = None, events=None):
        self.db = db
        #: the app's event bus: each sync publishes ``sync.finished`` on it (None: nothing is published)
        self.events = events
        #: with a home and ``plugin_sync`` (``plugin_host.distribution.PluginSync``, handed in by the
        #: composition root: sync sits below the plugin host), a sync also installs, updates and
        #: removes the server's published plugins
        self.home = home
        self.plugin_sync = plugin_sync
        self.keyring_backend = keyring_backend
        self.transport_factory = transport_factory
        # one AuthSession per account, shared by every thread: two refreshing the same single-use
        # refresh token at once would look like token theft to the server, which signs the device out
        self._auth: tuple[Account, AuthSession] | None = None

    def account(self) -> Account | None:
        with self.db.read_connection() as c:
            return state.account(c.connection.driver_connection)

    def _store(self, server_url: str, username: str) -> CredentialStore:
        return CredentialStore(server_url, username, state.device_id(self.db), self.keyring_backend)

    def login(self, server_url: str, username: str, password: str) -> Account:
        """Sign in and bind this home to the account; the refresh token goes to the keyring."""
        server_url = state.normalize_server_url(server_url)
        state.check_binding(self.account(), server_url, username)
        store = self._store(server_url, username)
        store.check()  # before asking the server: no keyring, no sign-in
        auth = AuthSession(self.transport_factory(server_url), store)
        pair = auth.login(username, password, state.device_id(self.db))
        account = Account(server_url, pair.user.id, pair.user.username, pair.user.role, tuple(pair.user.teams),
                          pair.user.display_name)
        with self.db.transaction(replicate=False) as scope:
            conn = scope.tx.dbapi_connection
            state.check_binding(state.account(conn), server_url, username)
            state.put(conn, state.ACCOUNT, account.to_json())
        return account

    def logout(self) -> bool:
        """Revoke the device's session and forget its tokens; the binding to the account stays."""
        account = self.account()
        if account is None:
            return False
        store = self._store(account.server_url, account.username)
        AuthSession(self.transport_factory(account.server_url), store).logout()
        self._auth = None
        return True

    def client(self) -> SyncClient:
        account = self.account()
        if account is None:
            raise SignedOut("not signed in: run `crm-desktop login --server URL --user NAME`")
        if self._auth is None or self._auth[0] != account:
            auth = AuthSession(self.transport_factory(account.server_url),
                               self._store(account.server_url, account.username))
            self._auth = (account, auth)
        return SyncClient(self.transport_factory(account.server_url), self._auth[1])

    def engine(self, client: SyncClient | None = None, **kwargs) -> sync_engine.SyncEngine:
        kwargs.setdefault("events", self.events)
        if self.home is not None and self.plugin_sync is not None and "plugin_sync" not in kwargs:
            account = self.account()
            if account is not None:
                kwargs["plugin_sync"] = self.plugin_sync(self.home, account.server_url)
        return sync_engine.SyncEngine(self.db, client or self.client(), **kwargs)

    def sync(self, *, attempts: int = 1, **kwargs) -> sync_engine.SyncReport:
        client = self.client()
        try:
            return sync_engine.sync_with_retries(self.engine(client, **kwargs), attempts)
        finally:
            client.transport.close()

    def status(self) -> dict:
        return sync_engine.status(self.db)
