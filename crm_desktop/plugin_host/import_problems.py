"""Saying which library a plugin lacked, instead of showing a traceback.

The installed app is a frozen Python that holds only the libraries the build
collected (:mod:`crm_desktop.plugin_api.libraries`). A plugin importing any
other library gets a ``ModuleNotFoundError`` deep in its own code; the rep or
admin needs one line naming the library, not the stack.
"""

from __future__ import annotations

from crm_desktop.plugin_api import libraries
from crm_desktop.plugin_host.loader import ROOT_PACKAGE

#: Modules whose absence is a bug in the plugin or the app, not a library the build lacks.
_NOT_LIBRARIES = (ROOT_PACKAGE, "crm_desktop")


def missing_library(exc: BaseException) -> str | None:
    """The module a plugin's import did not find, or None when ``exc`` is not about a library.

    ``crm_plugins.*`` (the plugin's own modules) and ``crm_desktop.*`` (the app's)
    are not libraries: those keep their traceback, which the plugin's author needs.
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top in _NOT_LIBRARIES:
        return None
    return exc.name


def missing_library_message(plugin: str, library: str) -> str:
    """The one line a plugin's record carries when ``library`` is missing."""
    return (f"plugin {plugin} needs the library {library!r}, which this build of crm-desktop does not include; "
            f"plugins can rely on {libraries.describe()} (docs/packaging.md)")
