"""The fault corpus harness (docs/reliability.md): run the real CLI in a child process and check
what a user would notice — the exit code, one line naming what was wrong, no traceback, the
database unchanged, nothing left behind, and no hang."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Every case is bounded; a hang fails the test instead of the run.
CASE_TIMEOUT = 60
#: Short limits so that the lock and hang cases finish quickly.
FAST_ENV = {"CRM_DESKTOP_LOCK_WAIT": "1", "CRM_DESKTOP_PLUGIN_TIMEOUT": "2", "QT_QPA_PLATFORM": "offscreen",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
LEFTOVER_MARKS = (".partial", ".tmp", ".recovering-")


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def run_cli(home: Path | str, *args: str, env: dict | None = None, timeout: float = CASE_TIMEOUT,
            preexec=None, cwd: Path | None = None) -> Result:
    full_env = {**os.environ, **FAST_ENV, **(env or {})}
    full_env.pop("CRM_DESKTOP_HOME", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "crm_desktop", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, preexec_fn=preexec, stdin=subprocess.DEVNULL,
                          cwd=cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def fingerprint(home: Path) -> str:
    """Row counts and a content hash of every table; the raw bytes when the file cannot be read."""
    db = Path(home) / "crm.sqlite3"
    if not db.exists():
        return "absent"
    digest = hashlib.sha256()
    try:
        conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
            for table in tables:
                rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
                digest.update(f"{table}:{len(rows)}:{rows!r}".encode())
        finally:
            conn.close()
        return "rows:" + digest.hexdigest()
    except sqlite3.Error:
        for suffix in ("", "-wal"):
            path = Path(str(db) + suffix)
            if path.exists():
                digest.update(path.read_bytes())
        return "bytes:" + digest.hexdigest()


def leftovers(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            found += [os.path.join(dirpath, f) for f in files if any(m in f for m in LEFTOVER_MARKS)]
    return found


def assert_refused(result: Result, *words: str, code: int | None = None) -> None:
    """Non-zero exit, exactly one ``error:`` line containing ``words``, no traceback."""
    assert "Traceback" not in result.err, result.err
    assert result.code != 0 if code is None else result.code == code, (result.code, result.err, result.out)
    assert len(result.error_lines) == 1, result.err
    for word in words:
        assert word in result.error_lines[0], (word, result.error_lines[0])


def assert_ok(result: Result, *words: str) -> None:
    assert "Traceback" not in result.err, result.err
    assert result.code == 0, (result.code, result.err, result.out)
    for word in words:
        assert word in result.out + result.err, (word, result.out, result.err)


@pytest.fixture(scope="session")
def template_home(tmp_path_factory) -> Path:
    """A home with demo data and a backup, made once; each case gets its own copy."""
    root = tmp_path_factory.mktemp("fault-template") / "home"
    assert run_cli(root, "demo-data", "--contacts", "40").code == 0
    assert run_cli(root, "db", "backup", str(root / "backups" / "crm-manual.sqlite3")).code == 0
    assert run_cli(root, "demo-data", "--contacts", "5", "--seed", "7").code == 0
    return root


@pytest.fixture
def fhome(template_home, tmp_path) -> Path:
    """A fresh copy of the template home."""
    target = tmp_path / "home"
    shutil.copytree(template_home, target)
    return target


@pytest.fixture
def world_dir():
    """A folder under /tmp that an unprivileged user can reach (the permission cases run as nobody)."""
    path = Path(tempfile.mkdtemp(prefix="crm-faults-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody():
    os.setgid(65534)
    os.setuid(65534)


def can_drop_privileges() -> bool:
    """Root, and this interpreter runs as nobody (a venv under /root would not)."""
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run([sys.executable, "-c", "import crm_desktop"], preexec_fn=as_nobody, timeout=30,
                              capture_output=True).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def write_plugin(folder: Path, name: str, code: str = "", **manifest) -> Path:
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "plugin.py", **manifest}))
    (d / "plugin.py").write_text(textwrap.dedent(code))
    return d


class LockHolder:
    """Another process holding the database's write lock (``exclusive``: no reader gets in either)."""

    def __init__(self, db: Path, exclusive: bool = False):
        code = textwrap.dedent(f"""
            import sqlite3, sys, time
            c = sqlite3.connect({str(db)!r}, isolation_level=None)
            if {exclusive!r}:
                c.execute("PRAGMA locking_mode=EXCLUSIVE")
            c.execute("BEGIN IMMEDIATE")
            c.execute("UPDATE contacts SET notes = notes WHERE rowid = 1")
            {"c.execute('SELECT count(*) FROM contacts').fetchone()" if exclusive else ""}
            print("ready", flush=True)
            sys.stdin.read()
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def damage(db: Path, page: int = 30, pages: int = 3) -> None:
    """Overwrite whole pages in the middle of the file (after folding the WAL into it)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek(page_size * page)
        fh.write(b"\xde\xad\xbe\xef" * (page_size * pages // 4))
