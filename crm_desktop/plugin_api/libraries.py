"""The libraries a plugin may import in every build of crm-desktop, from source or frozen.

A plugin runs inside the app's Python. In the installed (PyInstaller) app
that Python holds only what the build collected, so this list is a promise:
``packaging/crm-desktop.spec`` collects every module of each library below
(with its package metadata, so ``dependencies.python`` checks work), and
``docs/packaging.md`` prints the same list. A plugin importing anything else
is marked failed with "plugin X needs the library 'Y', which this build of
crm-desktop does not include", instead of a traceback.

The whole Python standard library is shipped too, except the parts listed in
:data:`STDLIB_EXCLUDED`. Other libraries the app happens to contain (keyring,
cryptography, vobject, ...) are internals and may go away in any release.

Importing this module imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Library:
    """One library plugins may rely on.

    ``module`` is its top-level import name, ``distribution`` the package
    name on PyPI (whose version ``dependencies.python`` checks), ``purpose``
    what a plugin would use it for.
    """

    module: str
    distribution: str
    purpose: str


#: The Qt modules shipped (``from PySide6.<module> import ...``). Not shipped on purpose: QtNetwork
#: and QtWebEngine (network access goes through ``ctx.http``, where the manifest's hosts are checked),
#: QtPrintSupport (its CUPS backend drags in a second TLS and Kerberos stack; write PDFs with
#: ``QtGui.QPdfWriter`` instead), QML/Quick, Designer, 3D, multimedia.
QT_MODULES: tuple[str, ...] = ("QtCore", "QtGui", "QtWidgets", "QtSvg", "QtSvgWidgets")

#: Third-party libraries a plugin may import, with every submodule.
LIBRARIES: tuple[Library, ...] = (
    Library("PySide6", "PySide6-Essentials", "Qt widgets for panels and dialogs (only the modules in QT_MODULES)"),
    Library("shiboken6", "shiboken6", "PySide6's binding runtime (isValid, wrapInstance)"),
    Library("requests", "requests", "its exceptions and Response objects, as ctx.http returns them (send through ctx.http)"),
    Library("sqlalchemy", "SQLAlchemy", "models of the plugin's own tables (declarative_base_for)"),
    Library("alembic", "alembic", "the plugin's migrations (env.py and versions/)"),
    Library("pydantic", "pydantic", "validated data models"),
    Library("pluggy", "pluggy", "hook markers (use crm_desktop.plugin_api.hookimpl)"),
)

#: Standard library modules left out of the frozen build: GUI toolkits other than Qt, test suites, tools,
#: and ``nis`` (deprecated; it links a Kerberos stack).
STDLIB_EXCLUDED: tuple[str, ...] = (
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "test", "ensurepip", "lib2to3", "venv", "distutils",
    "nis",
)


def shipped_module_names() -> list[str]:
    """Top-level import names of the libraries above, for messages and the build."""
    return [library.module for library in LIBRARIES]


def describe() -> str:
    """One line naming what plugins may import, as error messages quote it."""
    qt = ", ".join(QT_MODULES)
    others = ", ".join(library.module for library in LIBRARIES if library.module not in ("PySide6", "shiboken6"))
    return f"the Python standard library, PySide6 ({qt}), {others}"
