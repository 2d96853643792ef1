"""crm_desktop/plugin_api type-checks under ``mypy --strict`` (what plugin authors' editors see).

Modules it imports (domain, errors) are followed for their types but not reported here; the
rest of the package gets its own mypy run in ``make test``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_plugin_api_is_strict_clean():
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir=/dev/null", "crm_desktop/plugin_api"],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def test_facade_verbs_return_record_types_not_any():
    import typing

    from crm_desktop.plugin_api import (
        ActivitiesFacade, Conversion, Deal, DealsFacade, LeadsFacade, PipelinesFacade, TagsFacade, UsersFacade,
    )

    assert typing.get_type_hints(DealsFacade.win)["return"] is Deal
    assert typing.get_type_hints(LeadsFacade.convert)["return"] is Conversion
    assert "Activity" in str(typing.get_type_hints(ActivitiesFacade.log)["return"])
    assert "Stage" in str(typing.get_type_hints(PipelinesFacade.stages)["return"])
    assert "Tag" in str(typing.get_type_hints(TagsFacade.of)["return"])
    assert "User" in str(typing.get_type_hints(UsersFacade.current)["return"])
