"""Finding plugin folders: bundled ``plugins/``, the admin's system folder, ``<home>/plugins``.

Discovery never raises for a bad plugin: each folder becomes a
:class:`Candidate` carrying either its manifest or the error that stopped it.
A name found twice is reported on the later copy, never silently shadowed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from crm_desktop.plugin_host.manifest import MANIFEST_FILE, Manifest, ManifestError, read_manifest

log = logging.getLogger(__name__)

SYSTEM_PLUGINS_ENV = "CRM_DESKTOP_SYSTEM_PLUGINS"
SOURCES = ("bundled", "system", "user")


@dataclass
class Candidate:
    """A folder that looks like a plugin, with its manifest or why it has none."""

    name: str
    path: Path
    source: str
    manifest: Manifest | None = None
    error: str | None = None


def bundled_plugins_dir() -> Path | None:
    """The first-party ``plugins/`` folder (:func:`crm_desktop.paths.shipped_dir`: checkout or frozen build)."""
    from crm_desktop.paths import shipped_dir

    return shipped_dir("plugins")


def system_plugins_dir(policy=None) -> Path | None:
    """The admin's folder: ``CRM_DESKTOP_SYSTEM_PLUGINS``, else the policy's ``pluginsDir``."""
    if os.environ.get(SYSTEM_PLUGINS_ENV):
        return Path(os.environ[SYSTEM_PLUGINS_ENV]).expanduser()
    plugins_dir = getattr(policy, "plugins_dir", None)
    return Path(plugins_dir) if plugins_dir else None


def _folders(root: Path) -> list[Path]:
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot list plugin folder %s: %s", root, exc)
        return []
    # dot folders (.template, .staging) and __pycache__ are never plugins
    return [p for p in entries if p.is_dir() and not p.name.startswith((".", "_")) and (p / MANIFEST_FILE).exists()]


def inspect_folder(path: Path, source: str) -> Candidate:
    """One plugin folder as a candidate (manifest read and validated)."""
    try:
        manifest = read_manifest(path)
    except ManifestError as exc:
        return Candidate(name=path.name, path=path, source=source, error=str(exc))
    return Candidate(name=manifest.name, path=path, source=source, manifest=manifest)


def discover(roots: Sequence[tuple[str, Path | None]], extra: Iterable[tuple[str, Path]] = ()) -> list[Candidate]:
    """Every plugin under ``roots`` (``(source, folder)`` in priority order) and the ``extra`` folders.

    The first folder to claim a name wins; later ones get an error naming both.
    """
    found: list[Candidate] = []
    seen: dict[str, Candidate] = {}
    folders = [(source, folder) for source, root in roots if root is not None for folder in _folders(Path(root))]
    folders += [(source, Path(folder)) for source, folder in extra]
    seen_paths: set[Path] = set()
    for source, folder in folders:
        resolved = folder.resolve()
        if resolved in seen_paths:
            continue
        seen_paths.add(resolved)
        candidate = inspect_folder(resolved, source)
        first = seen.get(candidate.name)
        if first is not None:
            candidate.error = (f"duplicate plugin name {candidate.name!r}: already found at {first.path} "
                               f"({first.source}); this copy at {candidate.path} ({source}) is ignored")
            candidate.name = f"{candidate.name}@{source}:{candidate.path.name}"
        else:
            seen[candidate.name] = candidate
        found.append(candidate)
    return found
