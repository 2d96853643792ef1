"""pluggy options the host cannot honour are refused at load with one clear error (docs/plugin-hooks.md)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest


def write_plugin(parent: Path, name: str, code: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({"name": name, "version": "1.0.0", "main": "main.py"}))
    (folder / "main.py").write_text(textwrap.dedent(code))
    return folder


@pytest.mark.parametrize("option, hook", [
    ("hookwrapper=True", "crm_menu_actions"), ("wrapper=True", "crm_menu_actions"),
    ("tryfirst=True", "crm_event"), ("trylast=True", "crm_event"), ("specname='crm_panels'", "crm_panels"),
])
def test_a_plugin_using_an_unsupported_hook_option_fails_to_load_naming_it(crm_plugin, memory_keyring, tmp_path,
                                                                           option, hook):
    function = "my_hook" if "specname" in option else hook
    body = "yield" if "wrapper" in option else "return []"
    folder = write_plugin(tmp_path, "marked", f"""
        from crm_desktop.plugin_api import hookimpl

        @hookimpl({option})
        def {function}(ctx{', event' if hook == 'crm_event' else ''}):
            {body}
    """)
    host, ctx = crm_plugin(folder)
    record = host.records["marked"]
    assert ctx is None and record.state.value == "failed"
    first = record.error.splitlines()[0]
    name = option.split("=")[0]
    assert f"plugin 'marked': hook '{hook}' uses @hookimpl({name}=...)" in first
    assert "docs/plugin-hooks.md" in first


def test_a_plugin_without_options_loads_and_its_hooks_are_called(crm_plugin, memory_keyring, tmp_path):
    folder = write_plugin(tmp_path, "plain", """
        from crm_desktop.plugin_api import MenuAction, hookimpl

        @hookimpl
        def crm_menu_actions(ctx):
            return [MenuAction("hi", "Hi", lambda ctx: "hi")]
    """)
    host, ctx = crm_plugin(folder)
    assert host.records["plain"].state.value == "active", host.records["plain"].error
    assert [a.id for a in host.menu_actions("plain")] == ["hi"]
