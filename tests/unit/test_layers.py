"""The layer rule of DESIGN.md, at run time.

The direction of every import (nothing below ``ui/`` imports Qt, the plugin API imports
no internals, no cycles, ...) is written as import-linter contracts in ``pyproject.toml``
and checked by ``lint-imports`` (run first by ``make test``, and by the last test here).
Those contracts see every import statement; the tests below check what actually gets
loaded when a module is imported, which a static scan cannot.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (f"import sys; {statement};"
            f"print(sorted(m for m in sys.modules if m.startswith({prefixes!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return eval(out)  # a printed list of module names


def test_importing_core_layers_does_not_load_qt():
    loaded = _loaded_after(
        "import crm_desktop.core, crm_desktop.services, crm_desktop.cli, crm_desktop.storage.migrate,"
        " crm_desktop.plugin_host.host, crm_desktop.plugin_host.lifecycle, crm_desktop.sync.service",
        ("PySide6", "shiboken6", "crm_desktop.ui"))
    assert loaded == []


def test_importing_the_plugin_api_loads_no_internals():
    loaded = _loaded_after(
        "import crm_desktop.plugin_api",
        ("sqlalchemy", "PySide6", "crm_desktop.storage", "crm_desktop.services", "crm_desktop.plugin_host",
         "crm_desktop.core", "crm_desktop.sync"))
    assert loaded == [], "importing crm_desktop.plugin_api loaded " + ", ".join(loaded)


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
