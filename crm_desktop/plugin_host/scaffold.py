"""``crm-desktop plugin new NAME``: a plugin folder from ``plugins/.template``."""

from __future__ import annotations

import shutil
from pathlib import Path

from crm_desktop.plugin_api.errors import PluginError
from crm_desktop.plugin_host.discovery import bundled_plugins_dir
from crm_desktop.plugin_host.names import NAME_RULE, is_valid_name

TEMPLATE = ".template"
_TEXT_SUFFIXES = {".py", ".json", ".md", ".mako", ".txt", ".cfg", ".toml"}


def template_dir() -> Path:
    """The template folder shipped beside the bundled plugins."""
    root = bundled_plugins_dir()
    if root is None or not (root / TEMPLATE).is_dir():
        raise PluginError("the plugin template (plugins/.template) is missing from this installation")
    return root / TEMPLATE


def scaffold(name: str, parent: Path) -> Path:
    """Create ``parent/name`` from the template; returns the folder. Refuses bad names and existing folders."""
    if not is_valid_name(name):
        raise PluginError(f"plugin name {name!r} is invalid: use {NAME_RULE}")
    target = Path(parent) / name
    if target.exists():
        raise PluginError(f"{target} already exists; choose another name or --dir")
    ident = name.replace("-", "_")
    title = " ".join(part.capitalize() for part in name.split("-"))
    shutil.copytree(template_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in _TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8")
            text = (text.replace("__PLUGIN_NAME__", name).replace("__PLUGIN_IDENT__", ident)
                    .replace("__PLUGIN_TITLE__", title))
            path.write_text(text, encoding="utf-8")
    return target
