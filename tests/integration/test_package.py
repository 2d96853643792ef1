"""The frozen build: `make package-test` as a test (slow: builds with PyInstaller).

Skipped unless CRM_PACKAGE_TEST=1 (a build takes a minute or more on two cores);
CRM_PACKAGE_TEST=prebuilt tests an existing dist/crm-desktop without building.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODE = os.environ.get("CRM_PACKAGE_TEST", "")

pytestmark = [
    pytest.mark.package,
    pytest.mark.skipif(MODE not in ("1", "prebuilt"),
                       reason="builds the frozen app: set CRM_PACKAGE_TEST=1 (or =prebuilt) to run"),
]


@pytest.mark.timeout(1800)
def test_the_frozen_app_passes_its_smoke_test_with_a_plugin_written_after_the_build():
    pytest.importorskip("PyInstaller", reason="pip install -e '.[package]'")
    args = [sys.executable, str(REPO / "packaging" / "package_test.py")]
    if MODE == "prebuilt":
        args.append("--no-build")
    result = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "NO_TARBALL": "1"})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "package test passed" in result.stdout
