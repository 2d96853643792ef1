"""Static checks: undeclared risky imports and calls, with file and line."""

from __future__ import annotations

import textwrap

from crm_desktop.plugin_host import static_checks
from crm_desktop.plugin_host.static_checks import scan_plugin, scan_source


def rules(source: str) -> list[tuple[int, str, str | None]]:
    return [(f.line, f.rule, f.permission) for f in scan_source(textwrap.dedent(source), "main.py")]


def test_network_imports_need_the_network_permission():
    assert rules("""
        import socket
        import http.client
        from urllib.request import urlopen
        import requests as rq
        from crm_desktop.plugin_api import hookimpl
    """) == [
        (2, "network-import", "network"),
        (3, "network-import", "network"),
        (4, "network-import", "network"),
        (5, "network-import", "network"),
    ]


def test_processes_native_code_and_dynamic_code():
    assert rules("""
        import os as o
        import subprocess
        from os import system
        import ctypes
        o.system("ls")
        os_popen = o.popen("ls")
        exec("x = 1")
        y = eval("1 + 1")
        __import__("socket")
    """) == [
        (3, "subprocess", "subprocess"),
        (4, "subprocess", "subprocess"),
        (5, "native-code", "native"),
        (6, "subprocess", "subprocess"),
        (7, "subprocess", "subprocess"),
        (8, "dynamic-code", None),
        (9, "dynamic-code", None),
        (10, "dynamic-code", None),
    ]


def test_core_internals_are_reported_but_the_plugin_api_is_not():
    assert rules("""
        from crm_desktop import plugin_api
        import crm_desktop.plugin_api.context
        from crm_desktop.storage import models
        import importlib
        importlib.import_module("crm_desktop.services.contacts")
        importlib.import_module(name_from_somewhere)
        importlib.import_module(".helpers", __package__)
    """) == [
        (4, "core-internals", None),
        (6, "core-internals", None),
        (7, "dynamic-import", None),
    ]
    warning = scan_source("import importlib\nimportlib.import_module(x)\n", "m.py")[0]
    assert warning.severity == static_checks.WARNING


def test_findings_name_file_and_line(tmp_path):
    (tmp_path / "plugin.json").write_text("{}")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "net.py").write_text("x = 1\nimport socket\n")
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "fast.so").write_bytes(b"\x7fELF")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "net.py").write_text("import subprocess\n")  # caches are not code we ship

    found = [str(f) for f in scan_plugin(tmp_path)]

    assert found == [
        "broken.py:1: error: [syntax-error] does not parse: invalid syntax",
        "fast.so:0: error: [native-code] compiled native code (not checkable) (needs 'native')",
        "pkg/net.py:2: error: [network-import] imports socket (needs 'network')",
    ]


def test_granted_permissions_silence_their_findings(tmp_path):
    (tmp_path / "main.py").write_text("import requests\nimport subprocess\neval('1')\n")
    found = scan_plugin(tmp_path, granted={"network", "subprocess"})
    assert [(f.rule, f.line) for f in found] == [("dynamic-code", 3)]
    assert static_checks.has_errors(found)
