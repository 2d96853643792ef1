"""What the sync server tests run against: a throwaway PostgreSQL, a real uvicorn, a thin client.

- :class:`PostgresCluster`: Debian's PostgreSQL binaries, ``initdb`` as a non-root
  user (the ``postgres`` system user, or ``crmtest`` made for the purpose, when the
  tests run as root), listening on a free loopback port, removed afterwards.
- :class:`ThreadServer` / :class:`ProcessServer`: the app served by uvicorn on
  127.0.0.1, in a thread (cheap) or a subprocess (to be killed with SIGKILL).
- :class:`SyncClient`: a Qt-free client that speaks the protocol over HTTP with
  httpx and keeps an in-memory store and outbox, as the desktop client will.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

from crm_desktop.domain.ids import uuid7
from crm_desktop.sync import protocol as p

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda s: int(s.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _unprivileged_user() -> str:
    for name in ("postgres", "crmtest"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "crmtest"], check=True)
    return "crmtest"


class PostgresCluster:
    """``initdb`` + ``postgres`` on 127.0.0.1:<free port>; ``stop()`` removes everything."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
        self.data = self.root / "data"
        self.user = _unprivileged_user() if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["setpriv", f"--reuid={self.user}", f"--regid={pwd.getpwnam(self.user).pw_gid}", "--init-groups",
                "--", *argv]

    def start(self) -> "PostgresCluster":
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._as_user([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "crm", "-A", "trust",
                                      "-E", "UTF8", "--no-sync", "--no-instructions"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root)
        self.proc = subprocess.Popen(
            self._as_user([str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                           "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                           "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                           "-c", "max_connections=200", "-c", "shared_buffers=32MB"]),
            stdout=subprocess.DEVNULL, stderr=open(self.root / "postgres.log", "wb"), cwd=self.root)
        wait_until(self._ready, timeout=30)
        return self

    def _ready(self) -> bool:
        import psycopg
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()[-2000:]}")
        try:
            psycopg.connect(self.admin_dsn, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://crm@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg
        name = f"crm_test_{next(self._names)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return f"postgresql+psycopg://crm@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- servers


class ThreadServer:
    """The app under uvicorn in a thread of the test process."""

    def __init__(self, db_url: str, watch_interval: float = 0.1):
        import uvicorn

        from crm_server.app import create_app

        self.port = free_port()
        self.app = create_app(db_url, watch_interval=watch_interval)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=2, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "ThreadServer":
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=30)
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ProcessServer:
    """``crm-server run`` as a real process (so it can be killed with SIGKILL)."""

    def __init__(self, db_url: str, workers: int = 1):
        self.db_url = db_url
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ProcessServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crm_server", "--db", self.db_url, "run", "--port", str(self.port),
             "--workers", str(self.workers), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"crm-server exited: {self.proc.stdout.read().decode()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(up, timeout=60, interval=0.1)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (uvicorn and its workers), as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def run_cli(db_url: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crm_server", "--db", db_url, *argv], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def admin_setup(db_url: str, users: dict[str, tuple[str, list[str]]], teams: list[str]) -> None:
    """Teams and users (name -> (role, teams)), all with the password ``password-<name>``, in-process."""
    from crm_server import admin
    from crm_server.db import Database, migrate

    db = Database(db_url)
    migrate(db)
    with db.write() as session:
        for team in teams:
            admin.add_team(session, team)
        for name, (role, user_teams) in users.items():
            admin.add_user(session, name, role, user_teams, f"password-{name}")
    db.dispose()


def set_user(db_url: str, name: str, **changes) -> None:
    from crm_server import admin
    from crm_server.db import Database

    db = Database(db_url)
    with db.write() as session:
        admin.set_user(session, name, **changes)
    db.dispose()


# --------------------------------------------------------------------------- client


class ApiFailure(Exception):
    def __init__(self, response: httpx.Response):
        self.status = response.status_code
        try:
            self.body = response.json()
        except ValueError:
            self.body = {"error": "?", "detail": response.text}
        super().__init__(f"{self.status} {self.body}")


@dataclass
class LocalRecord:
    entity: str
    version: int
    data: dict[str, Any]
    deleted: bool = False


@dataclass
class SyncClient:
    """One device: tokens, a local store, an outbox; push then pull, like the desktop client."""

    base_url: str
    username: str
    password: str | None = None
    device_id: str = field(default_factory=uuid7)
    store: dict[str, LocalRecord] = field(default_factory=dict)
    outbox: list[p.Mutation] = field(default_factory=list)
    conflicts: list[p.MutationResult] = field(default_factory=list)
    rejected: list[p.MutationResult] = field(default_factory=list)
    cursor: str = p.START_CURSOR
    next_mutation_id: int = 1
    access: str | None = None
    refresh_token: str | None = None

    def __post_init__(self):
        if self.password is None:
            self.password = f"password-{self.username}"
        self.http = httpx.Client(base_url=self.base_url, headers=p.PROTOCOL_HEADERS, timeout=30)

    def close(self) -> None:
        self.http.close()

    # -- http
    def call(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
             auth: bool = True) -> dict:
        headers = {"Authorization": f"Bearer {self.access}"} if auth and self.access else {}
        response = self.http.request(method, p.API_PREFIX + path, json=json_body, params=params, headers=headers)
        if response.status_code >= 400:
            raise ApiFailure(response)
        return response.json()

    def login(self) -> p.TokenPair:
        pair = p.TokenPair.model_validate(self.call("POST", "/auth/login", auth=False, json_body={
            "username": self.username, "password": self.password, "device_id": self.device_id,
            "device_name": f"test {self.username}"}))
        self.access, self.refresh_token = pair.access_token, pair.refresh_token
        return pair

    def refresh(self) -> p.TokenPair:
        pair = p.TokenPair.model_validate(self.call("POST", "/auth/refresh", auth=False,
                                                    json_body={"refresh_token": self.refresh_token}))
        self.access, self.refresh_token = pair.access_token, pair.refresh_token
        return pair

    def push_raw(self, mutations: list[p.Mutation]) -> p.PushResponse:
        body = p.PushRequest(mutations=mutations).model_dump(mode="json")
        return p.PushResponse.model_validate(self.call("POST", "/sync/push", json_body=body))

    def pull_page(self, limit: int = p.DEFAULT_PULL_LIMIT) -> p.PullResponse:
        return p.PullResponse.model_validate(
            self.call("GET", "/sync/pull", params={"cursor": self.cursor, "limit": limit}))

    # -- local edits (each queues a mutation, as every local write will)
    def _queue(self, entity: str, record_id: str, op: p.Op, fields: dict, base_version: int) -> p.Mutation:
        mutation = p.Mutation(mutation_id=self.next_mutation_id, entity=entity, id=record_id, op=op,
                              fields=fields, base_version=base_version)
        self.next_mutation_id += 1
        self.outbox.append(mutation)
        return mutation

    def create(self, entity: str, record_id: str | None = None, **values) -> str:
        record_id = record_id or uuid7()
        self.store[record_id] = LocalRecord(entity, 0, dict(values))
        self._queue(entity, record_id, p.Op.CREATE, {k: (None, v) for k, v in values.items()}, 0)
        return record_id

    def edit(self, record_id: str, **values) -> None:
        local = self.store[record_id]
        fields = {k: (local.data.get(k), v) for k, v in values.items()}
        local.data.update(values)
        self._queue(local.entity, record_id, p.Op.UPDATE, fields, local.version)

    def delete(self, record_id: str) -> None:
        local = self.store[record_id]
        local.deleted = True
        self._queue(local.entity, record_id, p.Op.DELETE, {}, local.version)

    # -- sync
    def push(self, batch: int = 500) -> list[p.MutationResult]:
        results: list[p.MutationResult] = []
        while self.outbox:
            response = self.push_raw(self.outbox[:batch])
            for result in response.results:
                self._settle(result)
            results += response.results
            done = {r.mutation_id for r in response.results}
            self.outbox = [m for m in self.outbox if m.mutation_id not in done]
        return results

    def _settle(self, result: p.MutationResult) -> None:
        """Take theirs for what the server refused (the Conflicts view may resend mine later)."""
        outcome = result.original or result
        mutation = next((m for m in self.outbox if m.mutation_id == result.mutation_id), None)
        local = self.store.get(mutation.id) if mutation else None
        if outcome.status == p.MutationStatus.CONFLICT:
            self.conflicts.append(outcome)
            if local is not None:
                if outcome.conflict == p.ConflictKind.DELETED:
                    local.deleted = True
                elif outcome.theirs is not None:
                    local.deleted = False
                    for c in outcome.conflicts:
                        local.data[c.field] = c.theirs
                    if outcome.conflict == p.ConflictKind.EDITED:
                        local.data.update({k: v for k, v in outcome.theirs.items() if k in local.data})
        elif outcome.status == p.MutationStatus.REJECTED:
            self.rejected.append(outcome)

    def pull(self, limit: int = p.DEFAULT_PULL_LIMIT) -> list[p.PulledChange]:
        changes: list[p.PulledChange] = []
        while True:
            page = self.pull_page(limit)
            pending = {m.id for m in self.outbox}
            for change in page.changes:
                self._apply(change, pending)
            changes += page.changes
            self.cursor = page.cursor  # with the page, as one local transaction would
            if not page.has_more:
                return changes

    def _apply(self, change: p.PulledChange, pending: set[str]) -> None:
        local = self.store.get(change.id)
        if change.kind == p.ChangeKind.REMOVE:
            self.store.pop(change.id, None)
            return
        if local is not None and change.version is not None and change.version < local.version:
            return  # an older version than we have
        if change.kind == p.ChangeKind.TOMBSTONE:
            self.store[change.id] = LocalRecord(change.entity, change.version, local.data if local else {}, True)
            return
        data = {k: v for k, v in change.record.items() if k not in ("created_at", "updated_at")}
        if local is not None and change.id in pending:  # rebase pending local edits on the pulled record
            for m in self.outbox:
                if m.id == change.id:
                    data.update({k: new for k, (_base, new) in m.fields.items()})
        self.store[change.id] = LocalRecord(change.entity, change.version, data)

    def sync(self) -> None:
        self.push()
        self.pull()

    def live(self) -> dict[str, dict]:
        """Local live records: id -> fields (the view to compare between clients)."""
        return {k: v.data for k, v in sorted(self.store.items()) if not v.deleted}

    def events(self) -> Iterator[tuple[str, dict]]:
        """Server-sent events as (event, data), until the stream ends."""
        headers = {"Authorization": f"Bearer {self.access}", **p.PROTOCOL_HEADERS}
        with httpx.stream("GET", f"{self.base_url}{p.API_PREFIX}/sync/events", headers=headers,
                          timeout=httpx.Timeout(30, read=30)) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiFailure(response)
            event, data = None, None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and event:
                    yield event, data
                    event, data = None, None
