"""The layer rule of DESIGN.md: nothing below ``ui/`` imports Qt."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "crm_desktop"
QT_ALLOWED = ("ui/", "app.py")
QT_MODULES = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "qtpy")


def _qt_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(n.split(".")[0] in QT_MODULES for n in names):
            lines.append(node.lineno)
    return lines


def test_no_qt_below_the_ui_layer():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(QT_ALLOWED):
            continue
        offenders += [f"crm_desktop/{rel}:{line}" for line in _qt_imports(path)]
    assert offenders == [], "Qt imported below ui/ (DESIGN.md, Layer rule): " + ", ".join(offenders)


def test_importing_core_layers_does_not_load_qt():
    import subprocess
    import sys

    code = (
        "import sys, crm_desktop.core, crm_desktop.services, crm_desktop.cli, crm_desktop.storage.migrate;"
        "print([m for m in sys.modules if m.startswith('PySide6')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
