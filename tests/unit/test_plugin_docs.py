"""docs/plugin-hooks.md documents every hook with its real signature (datasette's test_docs idea)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from crm_desktop.plugin_api import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("crm_") and callable(getattr(hookspecs, n)))


def documented() -> dict[str, list[str]]:
    text = (DOCS / "plugin-hooks.md").read_text(encoding="utf-8")
    return {m.group(1): [a.strip() for a in m.group(2).split(",") if a.strip()]
            for m in re.finditer(r"^## (crm_\w+)\(([^)]*)\)\s*$", text, re.M)}


def test_the_spec_has_the_hooks_of_the_design():
    assert HOOKS == ["crm_activate", "crm_cli_commands", "crm_deactivate", "crm_event", "crm_menu_actions",
                     "crm_panels", "crm_record_actions"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    docs = documented()
    assert hook in docs, f"{hook} is missing from docs/plugin-hooks.md"
    assert docs[hook] == list(inspect.signature(getattr(hookspecs, hook)).parameters), \
        f"docs/plugin-hooks.md documents {hook}({', '.join(docs[hook])}), the spec differs"


def test_the_docs_name_no_hook_that_does_not_exist():
    assert sorted(set(documented()) - set(HOOKS)) == []


def test_every_public_api_name_has_a_docstring():
    import crm_desktop.plugin_api as api

    missing = [n for n in api.__all__ if not (getattr(api, n).__doc__ or "").strip()]
    assert missing == []
