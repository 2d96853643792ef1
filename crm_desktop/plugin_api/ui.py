"""``ctx.ui``: what a plugin's panels and actions may ask of the desktop window.

A panel never needs the main window object: it opens records, shows status
messages, runs slow work off the GUI thread, asks for confirmation and saves
files the user picks through this facade. The desktop app implements it with Qt (``crm_desktop.ui.plugins``);
on the command line and in headless hosts there is no window, and using
``ctx.ui`` raises :class:`~crm_desktop.plugin_api.NotConfigured`.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable, Protocol, Sequence, TypeVar

T = TypeVar("T")

#: The entities ``ctx.ui.open_record`` can show.
UI_ENTITIES = ("contact", "company", "lead", "deal", "activity")


class UiFacade(Protocol):
    """The desktop window as a plugin sees it (``ctx.ui``); every method may be called from any thread
    except :meth:`confirm` and :meth:`save_file`, which ask the user and so run on the GUI thread only."""

    def open_record(self, entity: str, record_id: str) -> None:
        """Show record ``record_id`` of ``entity`` (``contact``, ``company``, ``lead``, ``deal``,
        ``activity``) in the main window, as a click in search would."""
        ...

    def show_status(self, message: str, timeout_ms: int = 4000) -> None:
        """Show ``message`` in the main window's status bar for ``timeout_ms`` milliseconds."""
        ...

    def run_in_background(self, fn: Callable[[], T], *, on_done: Callable[[T], object] | None = None,
                          on_error: Callable[[BaseException], object] | None = None) -> None:
        """Run ``fn()`` on a worker thread; then ``on_done(result)`` or ``on_error(exception)`` on the GUI
        thread. Callbacks of a plugin that was disabled or reloaded meanwhile are dropped; without
        ``on_error`` a failure is logged and shown in the status bar."""
        ...

    def confirm(self, title: str, text: str) -> bool:
        """Ask the user a yes/no question in a dialog; True if they chose Yes."""
        ...

    def save_file(self, title: str, suggested_name: str, filters: Sequence[str],
                  write: Callable[[BinaryIO], object]) -> Path | None:
        """Ask the user where to save (a file dialog titled ``title``, proposing ``suggested_name``, with
        Qt name ``filters`` such as ``"CSV file (*.csv)"``), then call ``write(file)`` with a binary file
        open for writing and put it in place atomically: the chosen file is either the complete new one
        or untouched. Returns the path written, or None when the user cancelled or the write failed; a
        failure (disk full, no access) is shown to the user in one sentence. An exception ``write``
        raises leaves nothing behind and is raised again. The host writes the file, so the plugin
        needs no ``files:`` grant for the folder the user chose."""
        ...
