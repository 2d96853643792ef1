"""What hooks return: plain, frozen data. The host builds (and removes) every Qt object from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

#: The areas a :class:`Panel` can be shown in.
PANEL_AREAS = ("tab", "dock")


@dataclass(frozen=True)
class MenuAction:
    """An entry in the main window's menus.

    ``id`` is unique within the plugin; ``callback(ctx)`` runs when the user
    picks it (inside the plugin's guard); ``menu`` names the top-level menu
    (created if missing); ``shortcut`` is a Qt key sequence text such as
    ``"Ctrl+Shift+S"``; ``icon`` a resource icon name; ``permission`` one the
    user must have for the entry to show.
    """

    id: str
    title: str
    callback: Callable[[Any], Any]
    menu: str = "Tools"
    shortcut: Optional[str] = None
    icon: Optional[str] = None
    permission: Optional[str] = None


@dataclass(frozen=True)
class Panel:
    """A view the plugin adds: ``factory(parent)`` returns a ``QWidget``.

    ``path`` matches a manifest ``menu`` entry's ``path`` so the declared menu
    entry opens this panel; ``area`` is ``"tab"`` (a main-window tab) or
    ``"dock"`` (a dock widget). The factory is called inside the plugin's guard.
    """

    id: str
    title: str
    path: str
    factory: Callable[[Any], Any]
    area: str = "tab"

    def __post_init__(self) -> None:
        if self.area not in PANEL_AREAS:
            raise ValueError(f"Panel {self.id!r}: area {self.area!r} must be one of {', '.join(PANEL_AREAS)}")


@dataclass(frozen=True)
class RecordAction:
    """An entry in a record's context menu for ``entity`` (``contact``, ``deal``, ...).

    ``callback(ctx, record_ids)`` receives the ids of the selected records.
    """

    id: str
    title: str
    entity: str
    callback: Callable[[Any, list[str]], Any]
    permission: Optional[str] = None


@dataclass(frozen=True)
class CliCommand:
    """A subcommand the plugin adds to ``crm-desktop`` (``crm-desktop <name> ...``).

    ``configure(parser)`` adds arguments to an :class:`argparse.ArgumentParser`;
    ``run(ctx, args)`` does the work and returns an exit code (None means 0).
    A name already used by a core command is refused.
    """

    name: str
    help: str
    run: Callable[[Any, Any], Optional[int]]
    configure: Optional[Callable[[Any], None]] = None
