"""docs/packaging.md lists exactly the libraries the build ships to plugins (crm_desktop.plugin_api.libraries)."""

from __future__ import annotations

import re
from pathlib import Path

from crm_desktop.plugin_api import libraries

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- plugin-libraries:[^>]*-->\n(.*?)<!-- /plugin-libraries -->", re.S)


def expected_table() -> str:
    rows = ["| import | package | what for |", "| --- | --- | --- |"]
    for lib in libraries.LIBRARIES:
        purpose = lib.purpose
        if lib.module == "PySide6":
            purpose = f"Qt widgets for panels and dialogs: {', '.join(libraries.QT_MODULES)} only"
        rows.append(f"| `{lib.module}` | {lib.distribution} | {purpose} |")
    rows.append(f"| the standard library | | all of it, except: {', '.join(libraries.STDLIB_EXCLUDED)} |")
    return "\n".join(rows) + "\n"


def test_the_plugin_library_table_matches_the_build():
    found = BLOCK.search((REPO / "docs" / "packaging.md").read_text(encoding="utf-8"))
    assert found, "docs/packaging.md lost its <!-- plugin-libraries --> block"
    assert found.group(1) == expected_table(), "regenerate the table from crm_desktop/plugin_api/libraries.py:\n" + \
        expected_table()


def test_the_spec_reads_the_same_list():
    spec = (REPO / "packaging" / "crm-desktop.spec").read_text(encoding="utf-8")
    assert "from crm_desktop.plugin_api import libraries" in spec
    for name in ("libraries.LIBRARIES", "libraries.QT_MODULES", "libraries.STDLIB_EXCLUDED"):
        assert name in spec
