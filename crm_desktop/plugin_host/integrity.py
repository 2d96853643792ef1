"""Load-time integrity of installed bundles (issue 5).

A plugin installed from a bundle keeps the bundle's file list
(``CRMPLUGIN-FILES.json``) in its folder. Before the host imports it, it calls
:func:`check_plugin_folder`; any file changed, missing or added since the
install blocks the plugin with a message naming the file.

What this is for: catching an edited or half-overwritten plugin (a
well-meaning user "fixing" a file, a sync tool, disk trouble) and making a
tampered copy visible. It is not a defence against someone who can write to
the plugin folder: they can rewrite the file list too. The signature checked
at install and the admin policy are the trust decision (docs/security.md).

Plugins without a file list (first-party plugins shipped with the app,
folders a developer is working on) are "unmanaged" and not checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from crm_desktop.plugin_host.json_files import loads_bounded
from crm_desktop.errors import CrmError
from crm_desktop.plugin_host.bundle import FILE_LIST_FORMAT, FILE_LIST_NAME, INSTALL_RECORD_NAME

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


class IntegrityError(CrmError):
    """An installed plugin's files differ from its file list; names the plugin and the file."""

    def __init__(self, plugin: str, problems: list[str]):
        self.plugin = plugin
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"plugin {plugin} is blocked: {problems[0]}{more}; reinstall it from its bundle")


@dataclass
class IntegrityReport:
    """The result of checking one plugin folder."""

    plugin: str
    managed: bool  # False: no file list, nothing to check against
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if nothing differs (or the folder is unmanaged)."""
        return not self.problems

    def raise_if_failed(self) -> None:
        """Raise :class:`IntegrityError` if any file differs."""
        if self.problems:
            raise IntegrityError(self.plugin, self.problems)


def _ignored(rel: str) -> bool:
    # Bytecode caches are written by Python itself after install.
    parts = rel.split("/")
    return "__pycache__" in parts or rel.endswith((".pyc", ".pyo")) or rel in (FILE_LIST_NAME, INSTALL_RECORD_NAME)


def check_plugin_folder(folder: str | os.PathLike[str], plugin: str | None = None) -> IntegrityReport:
    """Compare a plugin folder with its kept file list (sizes first, then sha256)."""
    folder = Path(folder)
    plugin = plugin or folder.name
    list_path = folder / FILE_LIST_NAME
    if not list_path.exists():
        return IntegrityReport(plugin, managed=False)
    report = IntegrityReport(plugin, managed=True)
    try:
        doc = loads_bounded(list_path.read_text(encoding="utf-8"))
        if doc.get("format") != FILE_LIST_FORMAT:
            raise ValueError(f"format is not {FILE_LIST_FORMAT!r}")
        listed = {row["path"]: (int(row["size"]), str(row["sha256"])) for row in doc["files"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        report.problems.append(f"its file list {FILE_LIST_NAME} is unreadable ({exc})")
        return report

    present: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fname in filenames:
            rel = (Path(dirpath) / fname).relative_to(folder).as_posix()
            if not _ignored(rel):
                present.add(rel)
    for rel in sorted(present - set(listed)):
        report.problems.append(f"file {rel} was added after install")
    for rel, (size, sha) in sorted(listed.items()):
        path = folder / rel
        if rel not in present:
            report.problems.append(f"file {rel} is missing")
            continue
        if path.is_symlink():
            report.problems.append(f"file {rel} was replaced by a link")
            continue
        if path.stat().st_size != size:
            report.problems.append(f"file {rel} was changed after install (size differs)")
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            report.problems.append(f"file {rel} was changed after install (sha256 differs)")
    if report.problems:
        log.warning("plugin %s failed the integrity check: %s", plugin, "; ".join(report.problems))
    return report


def verify_plugin_folder(folder: str | os.PathLike[str], plugin: str | None = None) -> IntegrityReport:
    """:func:`check_plugin_folder`, raising :class:`IntegrityError` if anything differs."""
    report = check_plugin_folder(folder, plugin)
    report.raise_if_failed()
    return report
