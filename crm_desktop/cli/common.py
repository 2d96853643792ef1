"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from crm_desktop.core import Core
from crm_desktop.paths import Home


def home_of(args: argparse.Namespace) -> Home:
    return Home.resolve(getattr(args, "home", None)).check()


def open_core(args: argparse.Namespace, *, write: bool = True) -> Core:
    """The migrated database of the home the command line names (``write=False``: a reader,
    which never takes the write lock; see :meth:`Core.open`)."""
    return Core.open(home_of(args), write=write)


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout; control characters and bidi overrides in strings are escaped."""
    from crm_desktop.cli.terminal import json_for_terminal

    sys.stdout.write(json_for_terminal(json.dumps(data, indent=2, ensure_ascii=False, default=str)))
    sys.stdout.write("\n")
