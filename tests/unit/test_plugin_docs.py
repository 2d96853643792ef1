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


# -- docs/plugin-api.md: every public name of crm_desktop.plugin_api, every facade verb with an example

def _api_doc() -> str:
    return (DOCS / "plugin-api.md").read_text(encoding="utf-8")


def _facade_classes() -> list[str]:
    import crm_desktop.plugin_api as api

    return sorted(n for n in api.__all__ if inspect.isclass(getattr(api, n))
                  and (n.endswith("Facade") or n == "PluginContext"))


def _public_members(cls: type) -> dict[str, object]:
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and (callable(v) or isinstance(v, property))}


def _facade_verbs() -> list[tuple[str, str]]:
    import crm_desktop.plugin_api as api

    return [(c, m) for c in _facade_classes() for m in sorted(_public_members(getattr(api, c)))]


def _documented_verbs() -> dict[str, tuple[list[str] | None, str]]:
    """``Class.method`` -> (parameter names, or None for a property; the text up to the next heading)."""
    text = _api_doc()
    out = {}
    for m in re.finditer(r"^### (\w+)\.(\w+)(?:\(([^)]*)\))?\s*$\n(.*?)(?=^##|\Z)", text, re.M | re.S):
        params = None if m.group(3) is None else [
            p.split("=")[0].strip().lstrip("*") for p in m.group(3).split(",") if p.strip() not in ("", "*")]
        out[f"{m.group(1)}.{m.group(2)}"] = (params, m.group(4))
    return out


def test_every_public_api_name_is_in_the_api_reference():
    import crm_desktop.plugin_api as api

    text = _api_doc()
    missing = [n for n in api.__all__
               if not re.search(rf"^(- `{n}`: \S|## {n}\s*$)", text, re.M)]
    assert missing == [], f"docs/plugin-api.md lacks a line '- `Name`: ...' (or a '## Name' section) for {missing}"


def test_the_api_reference_names_nothing_that_does_not_exist():
    import crm_desktop.plugin_api as api

    text = _api_doc()
    named = set(re.findall(r"^- `(\w+)`: ", text, re.M)) | set(re.findall(r"^## (\w+)\s*$", text, re.M))
    assert sorted(named - set(api.__all__) - {"Names", "Paging"}) == []
    stale = sorted(set(_documented_verbs()) - {f"{c}.{m}" for c, m in _facade_verbs()})
    assert stale == [], f"docs/plugin-api.md documents verbs that do not exist: {stale}"


@pytest.mark.parametrize("cls, verb", _facade_verbs())
def test_every_facade_verb_is_documented_with_its_signature_and_an_example(cls, verb):
    import crm_desktop.plugin_api as api

    docs = _documented_verbs()
    key = f"{cls}.{verb}"
    assert key in docs, f"docs/plugin-api.md lacks a '### {key}(...)' section"
    params, body = docs[key]
    member = vars(getattr(api, cls))[verb]
    if isinstance(member, property):
        assert params is None, f"{key} is a property: document it without parentheses"
    else:
        real = [p for p in inspect.signature(member).parameters if p != "self"]
        assert params == real, f"docs/plugin-api.md documents {key}({', '.join(params or [])}), the code has {real}"
    assert "```python" in body, f"docs/plugin-api.md: {key} has no example"
    assert body.strip().splitlines()[0].strip(), f"docs/plugin-api.md: {key} has no one-line description"
