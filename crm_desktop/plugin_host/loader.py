"""Importing a plugin under its own package ``crm_plugins.<ident>``, and purging it again.

The plugin folder becomes the package ``crm_plugins.<ident>`` (its name with
``-`` replaced by ``_``), so plugins can use relative imports and two plugins
with a ``models.py`` never collide. Unloading removes every module of that
package from ``sys.modules``; nothing else of the host keeps them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

ROOT_PACKAGE = "crm_plugins"


def package_name(ident: str) -> str:
    """``crm_plugins.<ident>``."""
    return f"{ROOT_PACKAGE}.{ident}"


def _root_package() -> types.ModuleType:
    root = sys.modules.get(ROOT_PACKAGE)
    if root is None:
        spec = importlib.machinery.ModuleSpec(ROOT_PACKAGE, None, is_package=True)
        spec.submodule_search_locations = []
        root = importlib.util.module_from_spec(spec)
        root.__doc__ = "Namespace of the loaded crm-desktop plugins (managed by the plugin host)."
        sys.modules[ROOT_PACKAGE] = root
    return root


def import_plugin(ident: str, folder: Path, main: str, *, fresh: bool = False) -> types.ModuleType:
    """Import ``folder`` as ``crm_plugins.<ident>`` and return its ``main`` module.

    ``fresh`` (on reload) drops the import system's directory caches first, so
    files changed within the file system's timestamp resolution are seen.
    """
    root = _root_package()
    pkg_name = package_name(ident)
    purge(ident)
    init = folder / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        pkg_name, init if init.is_file() else None, submodule_search_locations=[str(folder)])
    if spec is None:  # no __init__.py: a plain package whose path is the folder
        spec = importlib.machinery.ModuleSpec(pkg_name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    package = importlib.util.module_from_spec(spec)
    sys.modules[pkg_name] = package
    try:
        if spec.loader is not None:
            spec.loader.exec_module(package)
        setattr(root, ident, package)
        if fresh:
            importlib.invalidate_caches()
        module_name = pkg_name + "." + main[:-3].replace("/", ".").replace("\\", ".")
        return importlib.import_module(module_name)
    except BaseException:
        purge(ident)
        raise


def plugin_modules(ident: str) -> list[str]:
    """Names in ``sys.modules`` that belong to the plugin."""
    pkg_name = package_name(ident)
    return [m for m in list(sys.modules) if m == pkg_name or m.startswith(pkg_name + ".")]


def purge(ident: str) -> list[str]:
    """Remove the plugin's modules from ``sys.modules`` (and the root package); returns their names."""
    names = plugin_modules(ident)
    for name in names:
        sys.modules.pop(name, None)
    root = sys.modules.get(ROOT_PACKAGE)
    if root is not None and hasattr(root, ident):
        delattr(root, ident)
    return names
