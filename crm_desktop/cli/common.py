"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from crm_desktop.core import Core
from crm_desktop.paths import Home


def home_of(args: argparse.Namespace) -> Home:
    return Home.resolve(getattr(args, "home", None))


def open_core(args: argparse.Namespace) -> Core:
    """The migrated database of the home the command line names."""
    return Core.open(home_of(args))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
