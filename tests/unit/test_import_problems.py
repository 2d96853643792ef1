"""A plugin importing a library the app does not ship: one line naming the library."""

from __future__ import annotations

import pytest

from crm_desktop.plugin_api import libraries
from crm_desktop.plugin_host.import_problems import missing_library, missing_library_message


def _error(code: str) -> BaseException:
    try:
        exec(code, {})
    except BaseException as exc:  # noqa: BLE001 - the test wants whatever it raised
        return exc
    raise AssertionError(f"{code!r} raised nothing")


def test_the_missing_module_is_named():
    assert missing_library(_error("import yaml_not_shipped_xyz")) == "yaml_not_shipped_xyz"
    assert missing_library(_error("import json.no_such_part_xyz")) == "json.no_such_part_xyz"


@pytest.mark.parametrize("code", [
    "import crm_plugins.some_plugin.forgotten_xyz",   # the plugin's own module: a bug in the plugin
    "import crm_desktop.no_such_internal_xyz",        # the app's: not a library either
    "from json import no_such_name_xyz",              # ImportError, not a missing module
    "raise ValueError('x')",
])
def test_other_import_problems_are_not_about_a_library(code):
    assert missing_library(_error(code)) is None


def test_the_message_names_plugin_and_library_and_what_plugins_can_use():
    message = missing_library_message("sales-charts", "matplotlib")
    assert message.startswith("plugin sales-charts needs the library 'matplotlib', "
                              "which this build of crm-desktop does not include; plugins can rely on "
                              "the Python standard library, PySide6 (QtCore, QtGui, QtWidgets")
    assert "requests, sqlalchemy, alembic, pydantic, pluggy" in message
    assert "\n" not in message


def test_every_shipped_library_is_importable_here():
    import importlib

    for library in libraries.LIBRARIES:
        importlib.import_module(library.module)
    for module in libraries.QT_MODULES:
        importlib.import_module(f"PySide6.{module}")
