"""A plugin with synced models, loaded by a host that has a writer (the app's executor): its synced
tables are published on the writer, and only then does it get its ctx and its ``crm_activate``.

The writer here is a queue the test runs by hand, so each step can be looked at; in the app it is
the window's ``DataExecutor`` (tests/qt/test_gui_thread_no_db.py)."""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

from crm_desktop.plugin_host.host import PluginHost
from crm_desktop.plugin_host.lifecycle import PluginState
from fixtures.memo_pad import MEMO_MODELS_SOURCE, memo_migration

MODELS = MEMO_MODELS_SOURCE
MAIN = '''
from crm_desktop.plugin_api import hookimpl
from .models import Memo

activated = []

@hookimpl
def crm_activate(ctx):
    activated.append(ctx)
'''
MIGRATION = memo_migration()


def write_plugins(plugins_dir):
    memo = plugins_dir / "memo-pad"
    (memo / "migrations" / "versions").mkdir(parents=True)
    (memo / "plugin.json").write_text(json.dumps({
        "name": "memo-pad", "version": "1.0.0", "displayName": "Memo pad", "author": "Tests",
        "description": "Team memos.", "main": "memo_pad.py", "permissions": [], "migrations": "migrations"}))
    (memo / "models.py").write_text(MODELS)
    (memo / "memo_pad.py").write_text(MAIN)
    (memo / "migrations" / "env.py").write_text(
        "from alembic import context\nfrom crm_desktop.plugin_api.migrations import run_migrations\n"
        "run_migrations(context)\n")
    (memo / "migrations" / "versions" / "0001.py").write_text(MIGRATION)
    # a plugin that needs memo-pad: it may load only once memo-pad is active
    pins = plugins_dir / "memo-pins"
    pins.mkdir()
    (pins / "plugin.json").write_text(json.dumps({
        "name": "memo-pins", "version": "1.0.0", "displayName": "Memo pins", "author": "Tests",
        "description": "Pins.", "main": "pins.py", "permissions": [],
        "dependencies": {"plugins": {"memo-pad": ">=1.0"}}}))
    (pins / "pins.py").write_text("from crm_desktop.plugin_api import hookimpl\n")


class QueueWriter:
    """A writer whose jobs run when the test calls :meth:`run`."""

    def __init__(self):
        self.jobs = []

    def write(self, fn, *, done=None, failed=None, label="write"):
        self.jobs.append((fn, done, failed, label))

    def labels(self):
        return [job[3] for job in self.jobs]

    def run_one(self):
        fn, done, failed, _label = self.jobs.pop(0)
        try:
            result = fn()
        except Exception as exc:
            failed(exc)
        else:
            done(result)

    def run(self):
        while self.jobs:
            self.run_one()


def synced_tables(home):
    with sqlite3.connect(home.db_path) as conn:
        return [r[0] for r in conn.execute("SELECT table_name FROM sync_plugin_tables ORDER BY 1")]


@pytest.fixture
def host(core, home):
    write_plugins(home.plugins_dir)
    made = PluginHost(core, home, bundled_dir=None, system_dir=None)
    writer = QueueWriter()
    made.set_writer(writer)
    made.writer = writer
    yield made
    made.stop()


def tables(home):
    with sqlite3.connect(home.db_path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_the_plugin_gets_its_ctx_only_after_the_writer_published_its_tables(host, home):
    host.start()
    # its tables are migrated on the writer first: nothing of it is imported until that is done
    assert host.loading and host.writer.labels() == ["migrate the tables of plugin memo-pad"]
    assert "crm_plugins.memo_pad.memo_pad" not in sys.modules and "memo_pad_memos" not in tables(home)
    assert host.context("memo-pad") is None and host.records["memo-pad"].state is PluginState.DISABLED
    host.writer.run_one()
    assert "memo_pad_memos" in tables(home)
    # imported and registered, waiting for the writer: no ctx, no hook called, its dependent waits too
    assert host.loading and host.writer.labels() == ["publish the synced tables of plugin memo-pad"]
    assert host.context("memo-pad") is None and host.records["memo-pad"].state is PluginState.DISABLED
    assert sys.modules["crm_plugins.memo_pad.memo_pad"].activated == []
    assert host.records["memo-pins"].state is PluginState.DISABLED and synced_tables(home) == []
    settled = []
    host.after_loads(lambda: settled.append(host.records["memo-pins"].state))
    assert settled == []
    host.writer.run()
    assert synced_tables(home) == ["memo_pad_memos"]
    assert host.records["memo-pad"].state is PluginState.ACTIVE
    assert sys.modules["crm_plugins.memo_pad.memo_pad"].activated == [host.context("memo-pad")]
    assert settled == [PluginState.ACTIVE] and not host.loading  # the dependent loaded after it


def test_stopping_while_the_writer_publishes_leaves_nothing_loaded(host, home):
    host.start()
    host.writer.run_one()  # migrated; its synced tables wait for the writer
    assert host.loading and host.writer.labels() == ["publish the synced tables of plugin memo-pad"]
    host.stop()
    assert not host.loading and "crm_plugins.memo_pad.memo_pad" not in sys.modules
    host.writer.run()  # the writer's answer comes after the stop: ignored
    assert host.context("memo-pad") is None and host.records["memo-pad"].state is not PluginState.ACTIVE
    assert "crm_plugins.memo_pad.memo_pad" not in sys.modules
    assert host.records["memo-pins"].state is not PluginState.ACTIVE


def test_a_migration_that_fails_on_the_writer_marks_only_that_plugin_and_rolls_back_only_it(host, home):
    versions = home.plugins_dir / "memo-pad" / "migrations" / "versions"
    (versions / "0002.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\nrevision = 'memo_0002'\ndown_revision = 'memo_0001'\n"
        "branch_labels = None\ndepends_on = None\n"
        "def upgrade():\n    op.create_table('memo_pad_tags', sa.Column('id', sa.Integer(), primary_key=True))\n"
        "    raise RuntimeError('revision 2 is broken')\n"
        "def downgrade():\n    pass\n")
    before = tables(home)
    host.start()
    assert host.writer.labels() == ["migrate the tables of plugin memo-pad"]
    host.writer.run()
    record = host.records["memo-pad"]
    assert record.state is PluginState.ERROR
    assert record.error == ("migrating its tables failed: migrating plugin-memo-pad to memo_0002 failed and was "
                            "rolled back: revision 2 is broken"), record.error
    # none of its revisions stayed (one transaction), nothing of it was imported, and nothing else changed
    assert tables(home) == before and "crm_plugins.memo_pad.memo_pad" not in sys.modules
    assert host.context("memo-pad") is None and not host.loading
    assert host.records["memo-pins"].state is PluginState.ERROR
    assert "memo-pad" in host.records["memo-pins"].error


def test_stopping_while_the_writer_migrates_leaves_nothing_loaded(host, home):
    host.start()
    assert host.writer.labels() == ["migrate the tables of plugin memo-pad"]
    host.stop()
    assert not host.loading
    host.writer.run()  # the migration still runs; its answer, after the stop, is ignored
    assert host.writer.jobs == [] and "crm_plugins.memo_pad.memo_pad" not in sys.modules
    assert host.context("memo-pad") is None and host.records["memo-pad"].state is not PluginState.ACTIVE


def test_reloading_while_the_writer_publishes_loads_it_once(host, home):
    host.start()
    host.writer.run_one()  # migrated; its synced tables wait for the writer
    host.reload("memo-pad")  # the first load is dropped; the reload waits for its own migration and publishing
    assert host.loading and len(host.writer.jobs) == 2
    host.writer.run()
    assert host.records["memo-pad"].state is PluginState.ACTIVE
    assert len(sys.modules["crm_plugins.memo_pad.memo_pad"].activated) == 1
    assert host.records["memo-pins"].state is PluginState.ACTIVE and not host.loading


def test_without_a_writer_the_load_is_over_when_start_returns(core, home):
    write_plugins(home.plugins_dir)
    host = PluginHost(core, home, bundled_dir=None, system_dir=None)
    try:
        host.start()
        assert not host.loading and host.records["memo-pad"].state is PluginState.ACTIVE
        assert host.records["memo-pins"].state is PluginState.ACTIVE
        assert synced_tables(home) == ["memo_pad_memos"]
    finally:
        host.stop()
