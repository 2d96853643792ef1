"""Synced plugin tables over a real server: a plugin record made on one laptop reaches a teammate's.

A small plugin written into each test's folder declares one synced model
(``SyncedModel``); two laptops (alice and bob, team north) load it in a headless plugin
host and sync with ``crm-server run`` over HTTP. The server knows nothing of the plugin but
the JSON schema the laptops publish.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.sync import outbox
from desktop_harness import clients, server  # noqa: F401  (fixtures)
from fixtures.memo_pad import memo_migration

MANIFEST = {
    "name": "memo-pad", "version": "1.0.0", "displayName": "Memo pad", "description": "Team memos",
    "author": "tests", "main": "memo_pad.py", "permissions": [], "migrations": "migrations",
}
MODELS = '''
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from crm_desktop.plugin_api import declarative_base_for
from crm_desktop.plugin_api.models import SyncedModel

Base = declarative_base_for("memo-pad")

class Memo(Base, SyncedModel):
    __tablename__ = "memo_pad_memos"
    text: Mapped[str] = mapped_column(String(200), info={"json_schema": {"minLength": 1}})
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    stars: Mapped[int | None] = mapped_column(Integer)
'''
MAIN = '''
from crm_desktop.plugin_api import hookimpl
from .models import Memo
'''
MIGRATION = memo_migration("0001", extra='\n        sa.Column("pinned", sa.Boolean(), nullable=False),'
                                                '\n        sa.Column("stars", sa.Integer(), nullable=True),')
ENV = '''
from alembic import context
from crm_desktop.plugin_api.migrations import run_migrations
run_migrations(context)
'''


def write_plugin(root: Path) -> Path:
    folder = root / "memo-pad"
    (folder / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (folder / "plugin.json").write_text(json.dumps(MANIFEST))
    (folder / "models.py").write_text(textwrap.dedent(MODELS))
    (folder / "memo_pad.py").write_text(textwrap.dedent(MAIN))
    (folder / "migrations" / "env.py").write_text(ENV)
    (folder / "migrations" / "versions" / "0001_memos.py").write_text(MIGRATION)
    return folder


@pytest.fixture
def plugin_folder(tmp_path):
    return write_plugin(tmp_path / "plugin-src")


@pytest.fixture
def hosts():
    made = []

    def load(client, folder):
        host = PluginHost(client.core, client.home, role="rep", bundled_dir=None, system_dir=None,
                          extra_folders=(folder,))
        host.start()
        made.append(host)
        record = host.records["memo-pad"]
        assert record.state.value == "active", record.error
        return host, host.context("memo-pad")

    yield load
    for host in reversed(made):
        host.stop()


def memo_model():
    return sys.modules["crm_plugins.memo_pad.models"].Memo


def memos(ctx):
    Memo = memo_model()
    with ctx.db.session() as s:
        return sorted((m.text, m.pinned, m.stars, m.deleted_at is not None) for m in s.query(Memo))


def pending(client):
    with client.core.db.read_connection() as c:
        return outbox.pending(c.connection.driver_connection, 1000)


def test_a_synced_plugin_record_reaches_a_teammate_and_edits_merge(clients, hosts, plugin_folder):
    a, b = clients("alice"), clients("bob")
    _, ctx_a = hosts(a, plugin_folder)
    _, ctx_b = hosts(b, plugin_folder)
    Memo = memo_model()
    with ctx_a.db.session() as s:
        memo = Memo(text="Call Acme back", stars=2)
        s.add(memo)
    # the write stamped the sync columns and queued its mutation, like a core record
    [row] = pending(a)
    assert (row.entity, row.op, row.record_id) == ("memo-pad.memos", "create", memo.id)
    assert row.fields["text"] == [None, "Call Acme back"] and row.fields["pinned"] == [None, False]
    assert memo.version == 0 and memo.revision == 1 and memo.created_at is not None

    report = a.sync()
    assert report.pushed == 1 and report.rejected == 0, report
    b.sync()
    assert memos(ctx_b) == [("Call Acme back", False, 2, False)]

    # different fields edited on both laptops offline: both survive
    with ctx_a.db.session() as s:
        s.get(Memo, memo.id).pinned = True
    with ctx_b.db.session() as s:
        s.get(Memo, memo.id).stars = 5
    a.sync(); b.sync(); a.sync()
    assert memos(ctx_a) == memos(ctx_b) == [("Call Acme back", True, 5, False)]

    # a tombstone travels too
    from datetime import datetime, timezone

    with ctx_b.db.session() as s:
        s.get(Memo, memo.id).deleted_at = datetime.now(timezone.utc)
    b.sync(); a.sync()
    assert memos(ctx_a) == [("Call Acme back", True, 5, True)]


def test_the_server_checks_plugin_records_against_the_published_schema(clients, hosts, plugin_folder, server):
    a = clients("alice")
    _, ctx = hosts(a, plugin_folder)
    Memo = memo_model()
    with ctx.db.session() as s:
        s.add(Memo(text=""))  # the schema says minLength 1
    report = a.sync()
    assert report.rejected == 1
    with a.core.db.read_connection() as c:
        [problem] = outbox.problems(c.connection.driver_connection)
    assert problem.reason == "validation" and "text" in problem.message and "non-empty" in problem.message
    # the schema the laptop published is what the server checked against; no plugin code there
    conn = sqlite3.connect(server.db_url.removeprefix("sqlite:///"))
    try:
        [(plugin, version, schema)] = conn.execute(
            "SELECT plugin, plugin_version, schema FROM plugin_schemas WHERE entity = 'memo-pad.memos'").fetchall()
    finally:
        conn.close()
    schema = json.loads(schema)
    assert (plugin, version) == ("memo-pad", "1.0.0")
    assert schema["properties"]["text"] == {"type": "string", "x-crm-kind": "text", "maxLength": 200, "minLength": 1}
    assert schema["required"] == ["text", "pinned"]


def test_records_pulled_before_the_plugin_is_installed_are_kept_and_applied(clients, hosts, plugin_folder):
    a, b = clients("alice"), clients("bob")
    _, ctx_a = hosts(a, plugin_folder)
    Memo = memo_model()
    with ctx_a.db.session() as s:
        s.add(Memo(text="Quarterly review"))
    a.sync()
    b.sync()  # bob has no memo-pad yet: the change is parked, not dropped
    with b.core.db.read_connection() as c:
        parked = c.connection.driver_connection.execute("SELECT entity FROM sync_parked_changes").fetchall()
    assert parked and set(parked) == {("memo-pad.memos",)}  # (the module's server has earlier tests' memos)
    _, ctx_b = hosts(b, plugin_folder)
    assert ("Quarterly review", False, None, False) in memos(ctx_b)
    with b.core.db.read_connection() as c:
        assert c.connection.driver_connection.execute("SELECT count(*) FROM sync_parked_changes").fetchone() == (0,)


def _conflict_on_b(a, b, ctx_a, ctx_b, text):
    """The same memo field edited on both laptops offline; a syncs first, so b's push conflicts."""
    from crm_desktop.sync import resolve

    Memo = memo_model()
    with ctx_a.db.session() as s:
        memo = Memo(text=text, stars=1)
        s.add(memo)
    a.sync(); b.sync()
    with ctx_a.db.session() as s:
        s.get(Memo, memo.id).stars = 3
    with ctx_b.db.session() as s:
        s.get(Memo, memo.id).stars = 5
    a.sync()
    assert b.sync().conflicts == 1
    [conflict] = [c for c in resolve.conflicts(b.core.db) if c.record_id == memo.id]
    assert conflict.entity == "memo-pad.memos" and conflict.title == text
    assert conflict.fields == [{"field": "stars", "base": 1, "mine": 5, "theirs": 3}]
    return memo.id, conflict


def _stars(ctx, memo_id):
    with ctx.db.session() as s:
        return s.get(memo_model(), memo_id).stars


def test_keep_mine_on_a_plugin_record_sends_my_value_on_top_of_theirs(clients, hosts, plugin_folder):
    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    _, ctx_a = hosts(a, plugin_folder)
    _, ctx_b = hosts(b, plugin_folder)
    memo_id, conflict = _conflict_on_b(a, b, ctx_a, ctx_b, "Keep mine memo")
    assert _stars(ctx_b, memo_id) == 3  # the server's value meanwhile
    resolve.keep_mine(b.services, conflict.id)
    assert _stars(ctx_b, memo_id) == 5 and resolve.conflicts(b.core.db) == []
    [row] = [r for r in pending(b) if r.record_id == memo_id]
    assert (row.op, row.fields) == ("update", {"stars": [3, 5]})  # on top of the server's value
    assert b.services.audit.for_record("memo-pad.memos", memo_id)[0].action == "keep-mine"
    b.sync(); a.sync()
    assert _stars(ctx_a, memo_id) == _stars(ctx_b, memo_id) == 5
    assert [r for r in pending(b) if r.record_id == memo_id] == []


def test_take_theirs_on_a_plugin_record_drops_my_change(clients, hosts, plugin_folder):
    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    _, ctx_a = hosts(a, plugin_folder)
    _, ctx_b = hosts(b, plugin_folder)
    memo_id, conflict = _conflict_on_b(a, b, ctx_a, ctx_b, "Take theirs memo")
    resolve.take_theirs(b.services, conflict.id)
    assert _stars(ctx_b, memo_id) == 3 and resolve.conflicts(b.core.db) == []
    assert [r for r in pending(b) if r.record_id == memo_id] == []
    b.sync(); a.sync()
    assert _stars(ctx_a, memo_id) == _stars(ctx_b, memo_id) == 3


def test_a_deleted_plugin_record_is_brought_back_by_keep_mine(clients, hosts, plugin_folder):
    """alice deletes the memo while bob edits it: bob's edit conflicts (deleted); keeping it restores it."""
    from datetime import datetime, timezone

    from crm_desktop.sync import resolve

    a, b = clients("alice"), clients("bob")
    _, ctx_a = hosts(a, plugin_folder)
    _, ctx_b = hosts(b, plugin_folder)
    Memo = memo_model()
    with ctx_a.db.session() as s:
        memo = Memo(text="Deleted meanwhile", stars=1)
        s.add(memo)
    a.sync(); b.sync()
    with ctx_a.db.session() as s:
        s.get(Memo, memo.id).deleted_at = datetime.now(timezone.utc)
    with ctx_b.db.session() as s:
        s.get(Memo, memo.id).stars = 4
    a.sync()
    assert b.sync().conflicts == 1
    [conflict] = [c for c in resolve.conflicts(b.core.db) if c.record_id == memo.id]
    assert conflict.kind == "deleted"
    resolve.keep_mine(b.services, conflict.id)
    b.sync(); a.sync()
    for ctx in (ctx_a, ctx_b):
        with ctx.db.session() as s:
            got = s.get(Memo, memo.id)
            assert (got.deleted_at, got.stars) == (None, 4)
