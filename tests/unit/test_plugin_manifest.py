"""plugin.json validation: every error names the field, the bad value and the rule."""

from __future__ import annotations

import json

import pytest

from crm_desktop.plugin_host.manifest import (
    Manifest, ManifestError, compatibility_problems, missing_python_dependencies, parse_manifest, read_manifest,
)
from crm_desktop.plugin_host.resolver import resolve

BASE = {"name": "demo", "version": "1.0.0"}


def errors_of(**changes) -> str:
    with pytest.raises(ManifestError) as info:
        parse_manifest({**BASE, **changes})
    return str(info.value)


def test_the_design_example_manifest_is_valid():
    m = parse_manifest({
        "name": "sample-plugin", "version": "1.0.0", "displayName": "Sample Plugin", "description": "...",
        "author": "...", "homepage": "https://example.com", "keywords": ["sample"], "main": "sample_plugin.py",
        "permissions": ["leads:read", "leads:write", "users:read", "api:access", "network"],
        "dependencies": {"plugins": {"contacts-extras": ">=1.0"}, "python": ["qrcode>=7"]},
        "compatibility": {"coreVersion": ">=1.0.0", "pythonVersion": ">=3.11"},
        "models": [{"name": "SampleModel", "file": "models.py"}], "migrations": "migrations",
        "menu": [{"title": "Sample Plugin", "path": "/plugins/sample", "icon": "puzzle-piece",
                  "permissions": ["sample:access"]}],
        "provides": {"permissions": ["sample:access"]}, "network": {"hosts": ["api.example.com"]},
        "settings": {"configurable": True, "schema": {"apiKey": {"type": "string", "required": True, "secret": True,
                                                               "description": "API key"}}},
    })
    assert m.ident == "sample_plugin" and m.title == "Sample Plugin"
    assert m.settings.schema_["apiKey"].secret is True


def test_unknown_key_is_named():
    assert "colour: unknown key (value 'red')" in errors_of(colour="red")


def test_nested_unknown_key_is_named():
    assert "compatibility.nodeVersion: unknown key" in errors_of(compatibility={"nodeVersion": ">=16"})


def test_bad_version_names_value_and_rule():
    message = errors_of(version="1.0")
    assert "version: '1.0' is invalid: must be a semantic version MAJOR.MINOR.PATCH" in message


def test_bad_name_names_value_and_rule():
    assert "name: 'My Plugin' is invalid: must be lowercase letters" in errors_of(name="My Plugin")


def test_unknown_permission_is_refused_with_the_known_list():
    message = errors_of(permissions=["leads:reed"])
    assert "permissions[0]: 'leads:reed' must be a known permission" in message and "leads:read" in message


def test_provided_permissions_become_known():
    m = parse_manifest({**BASE, "permissions": ["demo:use"], "provides": {"permissions": ["demo:use"]}})
    assert m.permissions == ["demo:use"]


def test_a_plugin_cannot_provide_a_core_permission():
    assert "'contacts:write' is a core permission" in errors_of(provides={"permissions": ["contacts:write"]})


def test_bad_version_range_names_field():
    message = errors_of(compatibility={"coreVersion": ">>1"})
    assert "compatibility.coreVersion: '>>1' is invalid: must be a version range" in message


def test_main_outside_the_folder_is_refused():
    assert "main: '../evil.py' is invalid: must be a path inside the plugin folder" in errors_of(main="../evil.py")


def test_network_hosts_need_the_network_permission():
    assert 'network.hosts: given without the "network" permission' in errors_of(network={"hosts": ["a.example"]})


def test_bad_setting_type_is_named():
    message = errors_of(settings={"schema": {"k": {"type": "colour"}}})
    assert "settings.schema.k.type: 'colour' is invalid" in message


def test_missing_name_is_required():
    with pytest.raises(ManifestError, match="name: is required"):
        parse_manifest({"version": "1.0.0"})


def test_read_manifest_reports_invalid_json_and_missing_main(tmp_path):
    (tmp_path / "plugin.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "plugin.json").write_text(json.dumps({**BASE, "main": "gone.py"}))
    with pytest.raises(ManifestError, match="main: 'gone.py' is invalid: no such file"):
        read_manifest(tmp_path)


def test_compatibility_checked_against_running_app():
    m = parse_manifest({**BASE, "compatibility": {"coreVersion": ">=2.0.0", "pythonVersion": "<3.0"}})
    problems = compatibility_problems(m)
    assert any("needs crm-desktop >=2.0.0, this is 1.0.0" in p for p in problems)
    assert any("needs Python <3.0" in p for p in problems)


def test_python_dependencies_checked_against_installed():
    m = parse_manifest({**BASE, "dependencies": {"python": ["requests>=2", "no-such-dist-xyz>=1", "pluggy>=99"]}})
    problems = missing_python_dependencies(m)
    assert problems[0] == "dependencies.python: 'no-such-dist-xyz>=1' is not installed"
    assert problems[1].startswith("dependencies.python: 'pluggy>=99' needed, pluggy ")
    assert len(problems) == 2


def _m(name: str, deps: dict[str, str] | None = None, version: str = "1.0.0") -> Manifest:
    return parse_manifest({"name": name, "version": version, "dependencies": {"plugins": deps or {}}})


def test_resolver_orders_dependencies_first():
    result = resolve({"c": _m("c", {"b": ">=1"}), "b": _m("b", {"a": ">=1"}), "a": _m("a")})
    assert result.order == ["a", "b", "c"] and result.problems == {}


def test_resolver_names_missing_wrong_version_and_cycles():
    result = resolve({
        "a": _m("a", {"ghost": ">=1.0"}), "b": _m("b", {"c": ">=1"}), "c": _m("c", {"b": ">=1"}),
        "d": _m("d", {"e": ">=2"}), "e": _m("e"), "f": _m("f", {"a": ">=1"}), "g": _m("g"),
    })
    assert result.problems["a"] == "needs plugin 'ghost' >=1.0, which is not installed"
    assert result.problems["b"].startswith("dependency cycle: b -> c -> b")
    assert "dependency cycle" in result.problems["c"]
    assert result.problems["d"] == "needs plugin 'e' >=2, but e 1.0.0 is installed"
    assert result.problems["f"].startswith("needs plugin 'a', which cannot load")
    assert result.order == ["e", "g"]
