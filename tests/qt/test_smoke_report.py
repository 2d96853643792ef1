"""crm-desktop --smoke-test: build, database, keyring, sync and each plugin's state (from source).

``packaging/package_test.py`` runs the same checks against the frozen build.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from crm_desktop.cli import main

REPO = Path(__file__).resolve().parents[2]


def _package_test():
    spec = importlib.util.spec_from_file_location("package_test", REPO / "packaging" / "package_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smoke(home, capsys) -> tuple[int, dict]:
    code = main(["--home", str(home.root), "--smoke-test", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_plugin_in_the_home_is_loaded_and_its_panel_built(home, capsys):
    _package_test().write_external_plugin(home.plugins_dir)
    code, report = _smoke(home, capsys)
    assert code == 0 and report["ok"] is True
    plugin = report["plugins"]["plugins"]["external-panel"]
    assert (plugin["state"], plugin["source"], plugin["panels"]) == ("active", "user", 1)
    assert report["build"]["frozen"] is False
    assert report["database"]["ok"] and report["database"]["revision"]


def test_a_plugin_needing_a_library_we_do_not_ship_fails_the_smoke_test_with_one_line(home, capsys):
    _package_test().write_plugin_needing_missing_library(home.plugins_dir)
    code, report = _smoke(home, capsys)
    assert code == 1 and report["ok"] is False
    plugin = report["plugins"]["plugins"]["needs-matplotlib"]
    assert plugin["state"] == "failed"
    assert plugin["error"].startswith("plugin needs-matplotlib needs the library 'matplotlib', "
                                      "which this build of crm-desktop does not include")
    assert report["plugins"]["error"] == "not working: needs-matplotlib"


def test_the_keyring_report_names_the_backend_in_use(home, capsys, memory_keyring):
    code, report = _smoke(home, capsys)
    assert code == 0
    keyring = report["keyring"]
    assert keyring["backend"] == "crm_desktop.auth.memory_keyring.MemoryKeyring" and keyring["available"]
    assert "SecretService" in keyring["known_backends"]  # the entry points a build must keep


def test_no_system_keyring_is_said_plainly_and_is_not_a_failure(home, capsys):
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())  # the conftest fixture puts the memory keyring back
    code, report = _smoke(home, capsys)
    assert code == 0
    assert report["keyring"]["available"] is False
    assert report["keyring"]["detail"].startswith("no system keyring is available on this session")


def test_sync_readiness_is_honest_about_what_exists(home, capsys):
    code, report = _smoke(home, capsys)
    sync = report["sync"]
    assert sync["ok"] is True and sync["requests"]
    assert Path(sync["ca_bundle"]).is_file()
    if not sync["client"]:
        assert sync["ready"] is False
        assert sync["detail"] == "this build has no sync client yet: the app works offline only"


def test_the_text_report_lists_each_section(home, capsys):
    assert main(["--home", str(home.root), "--smoke-test"]) == 0
    out = capsys.readouterr().out
    for label in ("build", "database", "keyring", "sync"):
        assert f"\nok  {label:<11} " in out
    assert "ok  plugin      sample-plugin" in out
    assert out.rstrip().endswith("smoke test passed")


def test_without_a_home_the_smoke_test_runs_in_a_temporary_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRM_DESKTOP_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "real-data"))  # the platform folder, were it used
    assert main(["--smoke-test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Path(report["database"]["path"]).parent.name.startswith("crm-desktop-smoke-")
    assert not (tmp_path / "real-data").exists()
