"""``crm-desktop plugin ...`` commands and plugin-provided commands."""

from __future__ import annotations

import json
import textwrap

import pytest

from crm_desktop.cli import main


def run(home, *argv) -> int:
    return main(["--home", str(home.root), *argv])


def write(home, name, code="", **manifest):
    d = home.plugins_dir / name
    d.mkdir(parents=True)
    (d / "plugin.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "plugin.py", **manifest}))
    (d / "plugin.py").write_text(textwrap.dedent(code))
    return d


CLI_PLUGIN = """
from crm_desktop.plugin_api import hookimpl, CliCommand
def configure(parser):
    parser.add_argument("word")
def run(ctx, args):
    print(f"{ctx.name} says {args.word}")
    return 0
@hookimpl
def crm_cli_commands(ctx):
    return [CliCommand("shout", "say a word", run, configure), CliCommand("search", "shadow a core command", run)]
"""


def test_list_reports_state_source_and_permissions_without_running_plugin_code(home, capsys):
    write(home, "fine", permissions=["contacts:read"])
    write(home, "broken", "raise ImportError('nope')\n")
    assert run(home, "plugin", "list", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["fine"]["state"] == "enabled" and rows["fine"]["source"] == "user"
    assert rows["fine"]["permissions"] == ["contacts:read"]
    # list never imports a plugin (issue 9): the broken one fails when it is loaded, e.g. by `plugin check`
    assert rows["broken"]["state"] == "enabled" and rows["broken"]["error"] is None
    assert rows["sample-plugin"]["source"] == "bundled"


def test_disable_then_enable_persist(home, capsys):
    write(home, "toggle")
    assert run(home, "plugin", "disable", "toggle") == 0
    assert "toggle 1.0.0: disabled" in capsys.readouterr().out
    run(home, "plugin", "list", "--json")
    assert {r["name"]: r["state"] for r in json.loads(capsys.readouterr().out)}["toggle"] == "disabled"
    assert run(home, "plugin", "enable", "toggle") == 0
    assert "toggle 1.0.0: enabled; it loads when the app starts" in capsys.readouterr().out


def test_unknown_plugin_is_one_clear_line(home, capsys):
    assert run(home, "plugin", "enable", "ghost") == 2
    assert "no plugin named 'ghost'" in capsys.readouterr().err


def test_validate_names_the_bad_field(home, tmp_path, capsys):
    d = tmp_path / "p"
    d.mkdir()
    (d / "plugin.json").write_text(json.dumps({"name": "p", "version": "1.0", "main": "plugin.py"}))
    (d / "plugin.py").write_text("")
    assert run(home, "plugin", "validate", str(d)) == 2
    assert "version: '1.0' is invalid: must be a semantic version" in capsys.readouterr().err


def test_config_validates_all_pairs_before_storing_any(home, capsys, memory_keyring):
    write(home, "conf", settings={"schema": {"apiKey": {"type": "string", "secret": True, "required": True},
                                             "limit": {"type": "integer", "default": 5}}})
    assert run(home, "plugin", "config", "conf", "limit=7", "apiKey=abc") == 0
    out = capsys.readouterr().out
    assert "limit = 7" in out and "apiKey = ********" in out and "abc" not in out
    assert memory_keyring.get_password("crm-desktop.plugin.conf", "apiKey") == "abc"
    assert run(home, "plugin", "config", "conf", "limit=9", "limit=lots") == 2
    assert "limit: 'lots' is invalid: must be of type integer" in capsys.readouterr().err
    run(home, "plugin", "config", "conf")
    assert "limit = 7" in capsys.readouterr().out


def test_new_scaffold_passes_check(home, tmp_path, capsys):
    assert run(home, "plugin", "new", "my-tool", "--dir", str(tmp_path)) == 0
    folder = tmp_path / "my-tool"
    assert (folder / "plugin.json").exists() and (folder / "migrations" / "env.py").exists()
    capsys.readouterr()
    assert run(home, "plugin", "check", str(folder), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["state"] == "active" and report["reloads"] == 3
    assert report["contributions"]["menu_actions"] == ["Tools > Count contacts"]
    assert report["contributions"]["menu"] == ["My Tool -> /plugins/my-tool"]
    assert run(home, "plugin", "new", "My Tool", "--dir", str(tmp_path)) == 2
    assert "plugin name 'My Tool' is invalid" in capsys.readouterr().err


def test_check_reports_a_leak_and_exits_non_zero(home, capsys):
    write(home, "leaky", """
        import sys
        from crm_desktop.plugin_api import hookimpl, MenuAction
        @hookimpl
        def crm_menu_actions(ctx):
            action = MenuAction("a", "A", lambda ctx: None)
            sys.modules.setdefault("leaky_cache", []).append(action)  # keeps old versions alive
            return [action]
    """)
    try:
        assert run(home, "plugin", "check", "leaky", "--json") == 1
    finally:
        import sys
        sys.modules.pop("leaky_cache", None)
    report = json.loads(capsys.readouterr().out)
    assert any("returned by the old version still reachable" in p for p in report["problems"])


def test_check_of_a_failing_plugin_exits_non_zero(home, capsys):
    write(home, "crashy", "raise RuntimeError('boom')\n")
    assert run(home, "plugin", "check", "crashy") == 1
    assert "RuntimeError: boom" in capsys.readouterr().out


def test_plugin_commands_are_added_and_cannot_shadow_core_ones(home, capsys):
    write(home, "talker", CLI_PLUGIN)
    assert run(home, "shout", "hello") == 0
    assert "talker says hello" in capsys.readouterr().out


def test_a_broken_plugin_does_not_break_core_commands_or_unknown_ones(home, capsys):
    write(home, "talker", CLI_PLUGIN.replace("return [CliCommand", "raise RuntimeError('cli boom')\n    return [CliCommand"))
    assert run(home, "plugin", "list", "--json") == 0
    capsys.readouterr()
    assert run(home, "shout", "hello") == 2
    assert "invalid choice: 'shout'" in capsys.readouterr().err


def test_uninstall_cli(home, capsys):
    write(home, "gone")
    assert run(home, "plugin", "uninstall", "gone") == 0
    assert "uninstalled gone; its data is kept" in capsys.readouterr().out
    assert not (home.plugins_dir / "gone").exists()
    assert run(home, "plugin", "uninstall", "sample-plugin") == 2
    assert "is bundled" in capsys.readouterr().err


def test_validate_accepts_an_installed_plugins_name_as_check_does(home, capsys):
    write(home, "by-name", "import subprocess\n", permissions=["contacts:read"])

    assert run(home, "plugin", "validate", "by-name") == 0
    out = capsys.readouterr().out
    assert "by-name 1.0.0: plugin.json is valid" in out
    assert "subprocess" in out  # the static checks ran over the installed folder


def test_validate_of_the_bundled_sample_plugin_by_name(home, capsys):
    assert run(home, "plugin", "validate", "sample-plugin") == 0
    assert "sample-plugin 1.0.0: plugin.json is valid" in capsys.readouterr().out


@pytest.mark.parametrize("target,message", [
    ("ghost", "error: plugin validate: no plugin named 'ghost' and no folder ghost (plugins: "),
    ("./nowhere", "error: plugin validate: no such folder ./nowhere"),
])
def test_validate_a_bad_name_or_path_is_one_line(home, capsys, target, message):
    write(home, "present")
    assert run(home, "plugin", "validate", target) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith(message) and captured.out == ""
    if target == "ghost":
        assert "present" in line


def test_validate_of_an_installed_plugin_with_a_bad_manifest_names_the_field(home, capsys):
    write(home, "bad-version", version="1.0")
    assert run(home, "plugin", "validate", "bad-version") == 2
    assert "version: '1.0' is invalid" in capsys.readouterr().err


def test_validate_of_a_file_is_one_line(home, tmp_path, capsys):
    (tmp_path / "plugin.json").write_text("{}")
    assert run(home, "plugin", "validate", str(tmp_path / "plugin.json")) == 2
    assert capsys.readouterr().err.strip() == f"error: plugin validate: {tmp_path / 'plugin.json'} is a file, not a plugin folder"


def test_check_builds_a_panel_that_loads_through_ctx_ui(home, tmp_path, capsys):
    """A panel that asks ctx.ui for background work while it is built (the reporting dashboard does) is
    checked with the app's ctx.ui over an offscreen window, not refused for lacking one."""
    folder = write(home, "bg-panel", code="""
        from PySide6.QtWidgets import QLabel
        from crm_desktop.plugin_api import Panel, hookimpl

        @hookimpl
        def crm_panels(ctx):
            def make(parent):
                label = QLabel("loading", parent)
                ctx.ui.run_in_background(lambda: ctx.contacts.count(), on_done=lambda n: label.setText(f"{n}"))
                return label
            return [Panel("main", "Background", "/plugins/bg-panel", make)]
        """, permissions=["contacts:read"], displayName="Bg", description="d", author="t",
                   menu=[{"title": "Bg", "path": "/plugins/bg-panel"}])
    capsys.readouterr()
    assert run(home, "plugin", "check", str(folder), "--json") == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["state"] == "active", report
    assert report["panels_built"] == ["Background"] and report["problems"] == [], report
