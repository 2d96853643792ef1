"""The user's own settings file, ``<home>/settings.json`` (:attr:`crm_desktop.paths.Home.settings_path`).

Window layout and theme live in Qt's ``ui.ini``; what the layers below the UI need
lives here, as plain JSON, so the command line and the app read the same values::

    {"phoneRegion": "DE"}

``phoneRegion`` (ISO 3166 code such as ``DE``, ``AT``, ``US``) is the country a phone
number written without ``+`` and country code belongs to, for duplicate detection
(:mod:`crm_desktop.domain.phones`). Without it the region comes from the system
locale (``LANG=de_DE.UTF-8`` gives ``DE``); with neither, such numbers are compared
by their digits only.
"""

from __future__ import annotations

import json
import locale
import logging
import os
from pathlib import Path

from crm_desktop.domain.phones import is_region

log = logging.getLogger(__name__)

PHONE_REGION = "phoneRegion"


def read(path: Path) -> dict:
    """The settings as a dict; a missing or unreadable file is an empty one (logged)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings file %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def locale_region() -> str | None:
    """The country of the system locale (``de_DE.UTF-8`` -> ``DE``), if the phone library knows it."""
    names = [os.environ.get(v) for v in ("LC_ALL", "LC_CTYPE", "LANG")]
    try:
        names.append(locale.getlocale()[0])
    except ValueError:
        pass
    for name in names:
        if name and "_" in name:
            region = name.split(".")[0].split("@")[0].split("_")[1].upper()
            if is_region(region):
                return region
    return None


def phone_region(settings_path: Path) -> str | None:
    """``phoneRegion`` from the settings file if it is a known region, else the locale's."""
    value = read(settings_path).get(PHONE_REGION)
    if isinstance(value, str) and is_region(value):
        return value.upper()
    if value:
        log.warning("settings %s: %s=%r is not a region code like DE or US; using the locale's", settings_path,
                    PHONE_REGION, value)
    return locale_region()
