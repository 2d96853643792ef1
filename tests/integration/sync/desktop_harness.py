"""A real sync server on 127.0.0.1 (``crm-server run`` in a subprocess, SQLite file) and
desktop clients, each with its own home, that sync with it over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from crm_desktop.core import Core
from crm_desktop.paths import Home
from crm_desktop.sync.service import SyncService

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, root: Path):
        self.root = root
        self.db_url = f"sqlite:///{root / 'server.sqlite3'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = root / "server.log"

    def admin(self, *args: str, password: str | None = None) -> None:
        cmd = [sys.executable, "-m", "crm_server", *args, "--db", self.db_url]
        subprocess.run(cmd, input=(password + "\n") if password else None, text=True, check=True,
                       capture_output=True, timeout=60)

    def start(self) -> "ServerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crm_server", "run", "--db", self.db_url, "--port", str(self.port),
             "--log-level", "warning"], stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("the server did not start in 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(root: Path, users=(("alice", "rep", "north"), ("bob", "rep", "north"),
                                    ("carol", "rep", "north"), ("boss", "admin", None))) -> ServerProcess:
    root.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(root)
    server.admin("team", "add", "north")
    for name, role, team in users:
        extra = ["--team", team] if team else []
        server.admin("user", "add", name, "--role", role, *extra, "--password-stdin", password=PASSWORD)
    return server.start()


@dataclass
class Client:
    """One laptop: a home with its database, signed in to the server."""

    name: str
    home: Home
    core: Core
    sync_service: SyncService

    @property
    def services(self):
        return self.core.services

    def sync(self):
        report = self.sync_service.sync()
        assert report.ok, report.errors
        return report

    def reopen(self) -> None:
        """Open the home again (the actor of the signed-in account applies to new writes)."""
        self.core.close()
        self.core = Core.open(self.home)
        self.sync_service = SyncService(self.core.db, keyring_backend=self.sync_service.keyring_backend)

    def close(self) -> None:
        self.core.close()


def make_client(root: Path, server: ServerProcess, user: str, keyring_backend=None, login: bool = True) -> Client:
    home = Home(root / f"home-{user}-{len(os.listdir(root)) if root.exists() else 0}").ensure()
    core = Core.open(home)
    client = Client(user, home, core, SyncService(core.db, keyring_backend=keyring_backend))
    if login:
        client.sync_service.login(server.url, user, PASSWORD)
        client.reopen()
    return client


# -- fixtures (imported by the test modules of this folder; no conftest.py here, because the
# server tests import names from tests/integration/conftest.py as the module ``conftest``) --------

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def clients(tmp_path, server, memory_keyring):
    made = []

    def make(user: str, login: bool = True):
        c = make_client(tmp_path, server, user, memory_keyring, login)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
