"""A ``kill -9`` in the middle of a large import leaves an intact database with all or nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from crm_desktop.cli import main
from crm_desktop.core import Core

ROWS = 40_000


@pytest.mark.slow
def test_sigkill_during_import_leaves_an_intact_database(home, tmp_path, capsys):
    with Core.open(home) as core:
        core.services.contacts.create(first_name="Before", last_name="Import", email="before@x.de")
    big = tmp_path / "big.csv"
    with open(big, "w", encoding="utf-8") as f:
        f.write("First Name,Last Name,E-mail,Phone,Company\n")
        for i in range(ROWS):
            f.write(f"Person,Number{i},p{i}@example.com,+49 30 {1000000 + i},Firm {i % 300}\n")
    env = {**os.environ, "CRM_DESKTOP_HOME": str(home.root)}
    proc = subprocess.Popen([sys.executable, "-m", "crm_desktop", "--home", str(home.root), "import", "contacts",
                             str(big), "--progress"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env=env, text=True)
    killed_at = None
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # "progress N/TOTAL" lines are written inside the import's transaction
            if line.startswith("progress "):
                done = int(line.split()[1].split("/")[0])
                if done >= 5000:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = done
                    break
            assert time.monotonic() < deadline, "the import never reported progress"
    finally:
        proc.kill()
        proc.wait()
    assert killed_at is not None and killed_at < ROWS, "the import ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    assert main(["--home", str(home.root), "db", "check"]) == 0
    assert "ok:" in capsys.readouterr().out
    conn = sqlite3.connect(home.db_path)
    try:
        contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
        companies = conn.execute("SELECT count(*) FROM companies").fetchone()[0]
        indexed = conn.execute("SELECT count(*) FROM contacts_fts").fetchone()[0]
        audited = conn.execute("SELECT count(*) FROM audit_entries WHERE action = 'import'").fetchone()[0]
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    finally:
        conn.close()
    # all or nothing: here nothing, since the kill came before the commit
    assert (contacts, companies, indexed, audited) == (1, 0, 1, 0)
    assert {"contacts_fts_ai", "companies_fts_ai"} <= triggers  # the suspended search triggers are back

    # and the same file imports completely afterwards
    with Core.open(home) as core:
        from crm_desktop.services.importer import import_file

        summary = import_file(core.services, "contacts", big)
        assert summary.created == ROWS and core.services.contacts.count() == ROWS + 1
        assert len(core.services.contacts.search("number39999")) == 1
