"""``crm-desktop db ...``, ``search`` and the global options, run in-process."""

from __future__ import annotations

import sqlite3

import pytest

from crm_desktop import __version__
from crm_desktop.cli import main
from crm_desktop.core import Core


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_db_upgrade_creates_and_check_passes(tmp_path, capsys):
    home = tmp_path / "h"
    assert main(["--home", str(home), "db", "upgrade"]) == 0
    assert (home / "crm.sqlite3").exists()
    assert main(["--home", str(home), "db", "check"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_db_check_reports_a_missing_database(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "none"), "db", "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no database at" in err[0]


def test_db_backup_is_a_consistent_copy_and_refuses_to_overwrite(core, home, tmp_path, capsys):
    core.services.contacts.create(first_name="Ann", last_name="Lee")
    target = tmp_path / "copy.sqlite3"
    assert main(["--home", str(home.root), "db", "backup", str(target)]) == 0
    count = sqlite3.connect(target).execute("SELECT count(*) FROM contacts").fetchone()[0]
    assert count == 1
    before = target.read_bytes()
    assert main(["--home", str(home.root), "db", "backup", str(target)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert target.read_bytes() == before


def test_refuses_a_database_newer_than_the_app(home, capsys):
    Core.open(home).close()
    conn = sqlite3.connect(home.db_path)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()
    assert main(["--home", str(home.root), "search", "x"]) == 2
    err = capsys.readouterr().err
    assert "newer than this app knows" in err and "9999_from_the_future" in err


def test_search_json(core, home, capsys):
    core.services.contacts.create(first_name="Maria", last_name="Müller", email="maria@acme.de")
    assert main(["--home", str(home.root), "search", "mull", "--json"]) == 0
    import json

    hits = json.loads(capsys.readouterr().out)
    assert [h["title"] for h in hits] == ["Maria Müller"]


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frobnicate" in err[0]


def test_the_collector_is_paused_while_the_command_modules_load_and_back_on_for_the_command(tmp_path, monkeypatch):
    """Start-up: the command modules load with the cyclic collector paused; the command itself (and
    anything after it) runs with the collector as it was, also when parsing the arguments fails."""
    import gc

    import crm_desktop.cli as cli

    seen = []
    build = cli.build_parser

    def watching(argv=None):
        seen.append(gc.isenabled())
        return build(argv)

    monkeypatch.setattr(cli, "build_parser", watching)
    assert gc.isenabled()
    assert cli.main(["--home", str(tmp_path / "h"), "db", "upgrade"]) == 0
    assert seen == [False] and gc.isenabled()
    assert cli.main(["--home", str(tmp_path / "h"), "no-such-command"]) != 0
    assert seen == [False, False] and gc.isenabled()
