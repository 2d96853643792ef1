"""Plugin bundles: pack, verify, stage and install (DESIGN.md, Bundles).

Format
------
A ``.crmplugin`` file is a zip whose root is the plugin folder (``plugin.json``
at the top) plus :data:`FILE_LIST_NAME`::

    {"format": "crm-desktop-files/1", "plugin": "sample-plugin", "version": "1.0.0",
     "files": [{"path": "plugin.json", "size": 812, "sha256": "..."}, ...]}

Paths use ``/``; the file list does not list itself. The detached signature
``BUNDLE.sig`` is described in :mod:`crm_desktop.plugin_host.signing`.

Install, step by step (:func:`install_bundle`)
----------------------------------------------
1. Signature: verified from the bundle's bytes and ``.sig`` **before the zip is
   opened**. A signature that does not verify is always refused; a missing or
   untrusted one is refused when the policy requires signatures.
2. Central directory: every entry name is checked (no absolute paths, ``..``,
   backslashes, drive letters, control characters, links, duplicates, case or
   Unicode-normalisation collisions, encrypted or exotic compression), and the
   entry count is limited.
3. File list and manifest are read with size limits and must agree with each
   other, with the signature, with the entries, and with the policy
   (blocked/allowed) and the installed version (no downgrade).
4. Extraction into a fresh staging folder beside the plugins (same file
   system, so the final move is an atomic rename). Bytes are counted while
   streaming — headers are not trusted — against the listed size and sha256,
   the per-member and total size limits, and the compression ratio limit.
5. Static checks over the staged code; errors refuse the install under a
   strict policy, and the caller's ``approve`` sees them.
6. Commit: the installed version is renamed aside, the staging folder renamed
   into place, the host's ``post_install`` runs (migrations, activation); if it
   raises, the new folder is removed and the old one renamed back.

At any failure the staging folder is removed and nothing else was written.
Folders whose names start with ``.`` inside the plugins folder belong to this
module (staging, previous versions kept aside) and are never plugins.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from packaging.version import InvalidVersion, Version

from crm_desktop.plugin_host.json_files import loads_bounded
from crm_desktop.plugin_host.names import MAX_MANIFEST_BYTES, NAME_RULE, is_valid_name
from crm_desktop.errors import CrmError
from crm_desktop.plugin_host import static_checks
from crm_desktop.plugin_host.policy import Policy
from crm_desktop.plugin_host.signing import (
    SignatureError, SignatureInfo, file_sha256, read_signature, sig_path_for, signature_verifies,
    verify_bundle_signature,
)

log = logging.getLogger(__name__)

BUNDLE_SUFFIX = ".crmplugin"
FILE_LIST_NAME = "CRMPLUGIN-FILES.json"
FILE_LIST_FORMAT = "crm-desktop-files/1"
#: Written by the installer beside the file list: where the plugin came from.
INSTALL_RECORD_NAME = "CRMPLUGIN-INSTALL.json"
MANIFEST_NAME = "plugin.json"

# Limits. Generous for real plugins (a big one is a few MB in a few hundred
# files), small enough that a hostile bundle cannot fill a disk or hang the app.
MAX_ENTRIES = 2_000
MAX_MEMBER_BYTES = 32 * 1024 * 1024
MAX_TOTAL_BYTES = 256 * 1024 * 1024
#: Uncompressed/compressed; text compresses ~3-10x, a bomb 1000x.
MAX_COMPRESSION_RATIO = 100
#: Members smaller than this are not ratio-checked: a small file of spaces is harmless.
RATIO_CHECK_FLOOR_BYTES = 1024 * 1024
MAX_FILE_LIST_BYTES = 4 * 1024 * 1024
MAX_PATH_LENGTH = 240
MAX_PATH_DEPTH = 16

#: Never packed: caches, bytecode (which would skip the static checks), VCS folders.
EXCLUDED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".bzr", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_CHUNK = 256 * 1024


class BundleError(CrmError):
    """A bundle was refused or could not be made; the message names the bundle, entry and rule."""


@dataclass(frozen=True)
class BundleLimits:
    """The limits a bundle must keep; tests pass smaller ones."""

    max_entries: int = MAX_ENTRIES
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_compression_ratio: float = MAX_COMPRESSION_RATIO
    ratio_check_floor_bytes: int = RATIO_CHECK_FLOOR_BYTES


DEFAULT_LIMITS = BundleLimits()


@dataclass(frozen=True)
class ListedFile:
    """One row of the file list."""

    path: str
    size: int
    sha256: str


@dataclass
class InstallPlan:
    """What an install would do: shown to the admin for approval before the commit."""

    bundle: Path
    name: str
    version: str
    previous_version: str | None
    signature: SignatureInfo | None
    permissions: list[str]
    findings: list[static_checks.Finding]
    bundle_sha256: str
    file_count: int
    total_bytes: int
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def publisher(self) -> str:
        """One line for the admin: the key id and whether the policy trusts it."""
        if self.signature is None:
            return "unsigned"
        trust = "trusted" if self.signature.trusted else "NOT trusted by the policy"
        return f"key {self.signature.key_id} ({trust}): {self.signature.public_key}"

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json`` output and the admin panel."""
        return {
            "bundle": str(self.bundle), "name": self.name, "version": self.version,
            "previousVersion": self.previous_version, "publisher": self.publisher,
            "keyId": self.signature.key_id if self.signature else None,
            "permissions": self.permissions, "findings": [f.to_json() for f in self.findings],
            "sha256": self.bundle_sha256, "files": self.file_count, "bytes": self.total_bytes,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_bundle` put in place."""

    name: str
    version: str
    previous_version: str | None
    path: Path
    plan: InstallPlan


# --------------------------------------------------------------------------- names


def entry_name_problem(name: str) -> str | None:
    """Why ``name`` may not be a bundle entry, or ``None`` if it is safe."""
    if not name:
        return "an empty name"
    if "\\" in name:
        return "a backslash in the name (Windows path separators are refused)"
    if name.startswith("/"):
        return "an absolute path"
    if re.match(r"^[A-Za-z]:", name) or ":" in name:
        return "a drive letter or colon in the name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character in the name"
    if len(name) > MAX_PATH_LENGTH:
        return f"a name longer than {MAX_PATH_LENGTH} characters"
    parts = name.rstrip("/").split("/")
    if len(parts) > MAX_PATH_DEPTH:
        return f"more than {MAX_PATH_DEPTH} folder levels"
    if ".." in parts:
        return "a '..' path component (path traversal)"
    for part in parts:
        if part in ("", "."):
            return "an empty or '.' path component"
        if part != part.rstrip(" ."):
            return "a component ending in a space or dot"
        if _WINDOWS_RESERVED.match(part):
            return f"a reserved device name ({part})"
    return None


def _collision_key(name: str) -> str:
    # Case-insensitive file systems (Windows, macOS) and NFC/NFD spellings map these to one file.
    return unicodedata.normalize("NFC", name).casefold()


def _is_link_or_special(info: zipfile.ZipInfo) -> bool:
    # No file type bits (made on Windows, or zipfile.writestr's bare 0o600): a plain file.
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind not in (0, stat.S_IFREG, stat.S_IFDIR)


# --------------------------------------------------------------------------- pack


@dataclass(frozen=True)
class PackResult:
    """What :func:`pack_plugin` wrote."""

    path: Path
    name: str
    version: str
    files: int
    total_bytes: int


def _read_manifest_file(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        doc = loads_bounded(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: no {MANIFEST_NAME}; is this a plugin folder?") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{path}: cannot read the manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{path}: the manifest must be a JSON object")
    return doc


def _excluded(rel_parts: tuple[str, ...]) -> bool:
    return any(p in EXCLUDED_DIRS for p in rel_parts[:-1]) or rel_parts[-1].endswith(EXCLUDED_SUFFIXES) \
        or rel_parts[-1] in EXCLUDED_DIRS


def pack_plugin(
    folder: str | os.PathLike[str], out_path: str | os.PathLike[str], *, overwrite: bool = False,
    limits: BundleLimits = DEFAULT_LIMITS, protected: Iterable[os.PathLike[str] | str] = (),
) -> PackResult:
    """Zip a plugin folder with its file list into ``out_path``.

    Leaves out ``__pycache__``, ``.pyc``/``.pyo`` and VCS folders; refuses
    symlinks and anything the installer would refuse, so a packed bundle
    installs. Entries are written in sorted order with fixed timestamps: the
    same folder gives the same bytes (and so the same signature hash).
    """
    folder = Path(folder)
    out_path = Path(out_path)
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a folder")
    manifest = _read_manifest_file(folder / MANIFEST_NAME)
    name, version = _identity_from_manifest(manifest, str(folder / MANIFEST_NAME))
    from crm_desktop.files import check_output

    check_output(out_path, force=overwrite, protected=protected)  # before reading any file
    out_resolved = out_path.resolve()

    files: list[tuple[str, Path]] = []
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if d in EXCLUDED_DIRS:
                dirnames.remove(d)
            elif (base / d).is_symlink():
                raise BundleError(f"{base / d}: is a symlink; bundles cannot hold links")
        dirnames.sort()
        for fname in sorted(filenames):
            path = base / fname
            rel = path.relative_to(folder).as_posix()
            if _excluded(tuple(rel.split("/"))) or path.resolve() == out_resolved:
                continue
            if rel in (FILE_LIST_NAME, INSTALL_RECORD_NAME):
                continue  # left over from an installed copy; the pack writes a fresh list
            if path.is_symlink():
                raise BundleError(f"{path}: is a symlink; bundles cannot hold links")
            if not path.is_file():
                raise BundleError(f"{path}: is not a regular file")
            problem = entry_name_problem(rel)
            if problem:
                raise BundleError(f"{path}: cannot be packed: {problem}")
            key = _collision_key(rel)
            if key in seen:
                raise BundleError(f"{path}: collides with {seen[key]} on case-insensitive systems")
            seen[key] = rel
            files.append((rel, path))
    if len(files) + 1 > limits.max_entries:
        raise BundleError(f"{folder}: {len(files)} files; a bundle holds at most {limits.max_entries - 1}")

    listed: list[dict[str, Any]] = []
    total = 0
    from crm_desktop.files import atomic_output

    with atomic_output(out_path, force=overwrite, protected=protected, binary=True) as stream, \
            zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, path in sorted(files):
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            digest = hashlib.sha256()
            size = 0
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
            if size > limits.max_member_bytes:
                raise BundleError(f"{path}: {size} bytes; a bundle member is at most {limits.max_member_bytes}")
            total += size
            listed.append({"path": rel, "size": size, "sha256": digest.hexdigest()})
        if total > limits.max_total_bytes:
            raise BundleError(f"{folder}: {total} bytes; a bundle holds at most {limits.max_total_bytes}")
        file_list = {"format": FILE_LIST_FORMAT, "plugin": name, "version": version, "files": listed}
        info = zipfile.ZipInfo(FILE_LIST_NAME, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        zf.writestr(info, json.dumps(file_list, indent=1, sort_keys=True))
    log.info("packed %s %s into %s (%d files)", name, version, out_path, len(listed))
    return PackResult(out_path, name, version, len(listed), total)


# --------------------------------------------------------------------------- verify


def _identity_from_manifest(manifest: Mapping[str, Any], where: str) -> tuple[str, str]:
    name = manifest.get("name")
    version = manifest.get("version")
    if not is_valid_name(name):
        raise BundleError(f"{where}: name {name!r} is invalid: {NAME_RULE}")
    if not isinstance(version, str):
        raise BundleError(f"{where}: version {version!r} is invalid: a version string such as '1.0.0'")
    try:
        Version(version)
    except InvalidVersion:
        raise BundleError(f"{where}: version {version!r} is invalid: a version such as '1.0.0' (PEP 440)") from None
    return name, version


def _parse_file_list(doc: Any, where: str, limits: BundleLimits) -> tuple[object, object, dict[str, ListedFile]]:
    """The file list's plugin name and version (as given: the caller compares them with the
    manifest's) and its files."""
    if not isinstance(doc, dict) or doc.get("format") != FILE_LIST_FORMAT:
        raise BundleError(f"{where}: {FILE_LIST_NAME} is not a file list (format must be {FILE_LIST_FORMAT!r})")
    rows = doc.get("files")
    if not isinstance(rows, list):
        raise BundleError(f"{where}: {FILE_LIST_NAME}: 'files' must be a list")
    listed: dict[str, ListedFile] = {}
    total = 0
    for row in rows:
        if not (isinstance(row, dict) and isinstance(row.get("path"), str) and isinstance(row.get("size"), int)
                and isinstance(row.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", row["sha256"])):
            raise BundleError(f"{where}: {FILE_LIST_NAME}: malformed row {str(row)[:80]}")
        if row["path"] in listed:
            raise BundleError(f"{where}: {FILE_LIST_NAME} lists {row['path']!r} twice")
        if not 0 <= row["size"] <= limits.max_member_bytes:
            raise BundleError(
                f"{where}: entry {row['path']!r} is listed with {row['size']} bytes; "
                f"a member is at most {limits.max_member_bytes} bytes"
            )
        total += row["size"]
        listed[row["path"]] = ListedFile(row["path"], row["size"], row["sha256"])
    if total > limits.max_total_bytes:
        raise BundleError(f"{where}: the file list adds up to {total} bytes; a bundle holds at most {limits.max_total_bytes}")
    return doc.get("plugin"), doc.get("version"), listed


class BundleVerifier:
    """Checks one bundle file without writing anything, then extracts it safely.

    Use :meth:`check_signature`, then :meth:`open` (central directory, file
    list, manifest), then :meth:`extract_to` a fresh empty folder. Every
    refusal is a :class:`BundleError` naming the bundle, the entry and the rule.
    """

    def __init__(self, bundle_path: str | os.PathLike[str], policy: Policy | None = None,
                 limits: BundleLimits = DEFAULT_LIMITS, sig_path: str | os.PathLike[str] | None = None):
        self.path = Path(bundle_path)
        self.policy = policy or Policy()
        self.limits = limits
        self.sig_path = Path(sig_path) if sig_path else sig_path_for(self.path)
        self.signature: SignatureInfo | None = None
        #: The verified signature itself (base64), kept in the install record for load-time checks.
        self.signature_b64: str | None = None
        self.sha256: str | None = None
        self.name = ""
        self.version = ""
        self.manifest: dict[str, Any] = {}
        self.listed: dict[str, ListedFile] = {}
        self.warnings: list[str] = []
        self._zip: zipfile.ZipFile | None = None
        self._members: list[zipfile.ZipInfo] = []

    def _fail(self, message: str, entry: str | None = None) -> BundleError:
        where = f"{self.path.name}: entry {entry!r}" if entry is not None else self.path.name
        return BundleError(f"bundle {where}: {message}")

    # -- step 1: before the zip is opened
    def check_signature(self) -> SignatureInfo | None:
        """Verify ``BUNDLE.sig`` against the bundle's bytes and the policy's trusted keys."""
        if not self.path.is_file():
            raise BundleError(f"bundle {self.path}: no such file")
        self.sha256 = file_sha256(self.path)
        if not self.sig_path.exists():
            if self.policy.require_signature:
                raise self._fail(f"unsigned (no {self.sig_path.name}), and the policy requires a signature")
            self.warnings.append("the bundle is unsigned")
            return None
        try:
            info = verify_bundle_signature(
                self.path, self.sig_path, self.policy.trusted_keys,
                require_trusted=self.policy.require_signature, bundle_sha256=self.sha256,
            )
        except SignatureError as exc:
            raise BundleError(f"bundle {exc}") from None
        if not info.trusted:
            self.warnings.append(f"signed by key {info.key_id}, which the policy does not trust")
        self.signature = info
        # keep exactly the signature that verified (the .sig could change between two reads)
        try:
            kept = base64.b64encode(read_signature(self.sig_path)[1]).decode("ascii")
        except SignatureError as exc:
            raise BundleError(f"bundle {exc}") from None
        if not signature_verifies(info.public_key, info.plugin, info.version, info.sha256, kept):
            raise self._fail(f"{self.sig_path.name} changed while the bundle was being verified")
        self.signature_b64 = kept
        return info

    # -- step 2/3: central directory, file list, manifest
    def open(self) -> None:
        """Open the zip and check every entry name, the file list and the manifest."""
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise self._fail(f"not a valid zip archive (truncated or corrupt: {exc})") from None
        infos = self._zip.infolist()
        if len(infos) > self.limits.max_entries:
            raise self._fail(f"{len(infos)} entries; a bundle holds at most {self.limits.max_entries}")
        archive_size = self.path.stat().st_size
        seen: set[str] = set()
        keys: dict[str, str] = {}
        dirs: set[str] = set()
        for info in infos:
            name = info.filename
            problem = entry_name_problem(name)
            if problem:
                raise self._fail(f"refused: {problem}", name)
            if not info.is_dir() and _excluded(tuple(name.split("/"))):
                raise self._fail("refused: compiled bytecode or a cache/VCS folder (it would skip the static checks)", name)
            if _is_link_or_special(info):
                raise self._fail("refused: a symlink or special file (only regular files are allowed)", name)
            if info.flag_bits & 0x1:
                raise self._fail("refused: encrypted entries are not allowed", name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self._fail(f"refused: compression method {info.compress_type} (only stored or deflated)", name)
            if info.compress_size > archive_size or info.header_offset > archive_size:
                raise self._fail("refused: its header points outside the archive (corrupt or crafted)", name)
            if name in seen:
                raise self._fail("refused: duplicate entry name", name)
            seen.add(name)
            key = _collision_key(name.rstrip("/"))
            if key in keys:
                raise self._fail(f"refused: collides with {keys[key]!r} on case-insensitive or Unicode-normalising file systems", name)
            keys[key] = name
            parts = name.rstrip("/").split("/")
            for i in range(1, len(parts)):
                dirs.add(_collision_key("/".join(parts[:i])))
            if not info.is_dir():
                self._members.append(info)
        for info in self._members:
            if _collision_key(info.filename) in dirs:
                raise self._fail("refused: a file with the same name as a folder", info.filename)

        names = {i.filename for i in self._members}
        if FILE_LIST_NAME not in names:
            raise self._fail(f"no {FILE_LIST_NAME}; bundles are made by 'crm-desktop plugin pack'")
        if INSTALL_RECORD_NAME in names:
            raise self._fail("refused: reserved name", INSTALL_RECORD_NAME)
        doc = self._read_json_member(FILE_LIST_NAME, MAX_FILE_LIST_BYTES)
        plugin, version, self.listed = _parse_file_list(doc, f"bundle {self.path.name}", self.limits)
        for info in self._members:
            if info.filename != FILE_LIST_NAME and info.filename not in self.listed:
                raise self._fail(f"refused: not in {FILE_LIST_NAME}", info.filename)
        for path in self.listed:
            if path not in names:
                raise self._fail(f"listed in {FILE_LIST_NAME} but missing from the bundle", path)
        if MANIFEST_NAME not in self.listed:
            raise self._fail(f"no {MANIFEST_NAME} at the bundle's root")

        manifest = self._read_json_member(MANIFEST_NAME, MAX_MANIFEST_BYTES)
        if not isinstance(manifest, dict):
            raise self._fail("refused: the manifest must be a JSON object", MANIFEST_NAME)
        self.name, self.version = _identity_from_manifest(manifest, f"bundle {self.path.name}: {MANIFEST_NAME}")
        self.manifest = manifest
        perms = manifest.get("permissions", [])
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise self._fail(f"permissions {perms!r} is invalid: a list of strings", MANIFEST_NAME)
        main = manifest.get("main")
        if main is not None and (not isinstance(main, str) or main not in self.listed):
            raise self._fail(f"main {main!r} is invalid: it must name a file in the bundle", MANIFEST_NAME)
        if (plugin, version) != (self.name, self.version):
            raise self._fail(
                f"{FILE_LIST_NAME} says {plugin} {version} but {MANIFEST_NAME} says {self.name} {self.version}"
            )
        if self.signature and (self.signature.plugin, self.signature.version) != (self.name, self.version):
            raise self._fail(
                f"the signature is for {self.signature.plugin} {self.signature.version}, "
                f"but the bundle holds {self.name} {self.version}"
            )
        reason = self.policy.refusal(self.name)
        if reason:
            raise self._fail(f"refused: {reason}")

    def _read_json_member(self, name: str, limit: int) -> Any:
        info = self._zip.getinfo(name)  # type: ignore[union-attr]
        data = bytearray()
        try:
            with self._zip.open(info) as fh:  # type: ignore[union-attr]
                while chunk := fh.read(_CHUNK):
                    data += chunk
                    if len(data) > limit:
                        raise self._fail(f"refused: more than {limit} bytes", name)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise self._fail(f"cannot be read (corrupt: {exc})", name) from None
        try:
            return loads_bounded(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._fail(f"invalid JSON: {exc}", name) from None

    # -- step 4: extraction
    def extract_to(self, staging: Path) -> int:
        """Stream every member into the empty folder ``staging``; returns the total bytes.

        Counts bytes as they come (headers are not trusted) and checks them
        against the listed size and sha256 and the limits.
        """
        assert self._zip is not None, "open() first"
        staging_real = os.path.realpath(staging)
        total = 0
        limits = self.limits
        for info in sorted(self._members, key=lambda i: i.filename):
            name = info.filename
            listed = self.listed.get(name)
            target = os.path.join(staging_real, *name.split("/"))
            # Belt and braces: names were checked, but never write outside staging.
            if os.path.commonpath([staging_real, os.path.realpath(os.path.dirname(target))]) != staging_real:
                raise self._fail("refused: would be written outside the staging folder", name)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
            fd = os.open(target, flags, 0o644)
            digest = hashlib.sha256()
            size = 0
            # The zip reader stops reading compressed data at the member's compressed size;
            # that bounds the input, so output/compressed is an honest ratio.
            compressed = max(info.compress_size, 1)
            cap = limits.max_member_bytes if listed is None else min(listed.size, limits.max_member_bytes)
            try:
                with os.fdopen(fd, "wb") as out, self._zip.open(info) as src:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        total += len(chunk)
                        if size > limits.max_member_bytes:
                            raise self._fail(f"refused: more than {limits.max_member_bytes} bytes (size limit)", name)
                        if size > limits.ratio_check_floor_bytes and size > compressed * limits.max_compression_ratio:
                            raise self._fail(
                                f"refused: compression ratio above {limits.max_compression_ratio:g}:1 "
                                f"({size} bytes from {info.compress_size}; zip bomb?)", name)
                        if total > limits.max_total_bytes:
                            raise self._fail(f"refused: the bundle expands beyond {limits.max_total_bytes} bytes", name)
                        if size > cap:
                            raise self._fail(f"refused: larger than the {cap} bytes in {FILE_LIST_NAME}", name)
                        digest.update(chunk)
                        out.write(chunk)
            except BundleError:
                raise
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise self._fail(f"cannot be read (corrupt or truncated: {exc})", name) from None
            if listed is not None:
                if size != listed.size:
                    raise self._fail(f"refused: {size} bytes, but {FILE_LIST_NAME} lists {listed.size}", name)
                if digest.hexdigest() != listed.sha256:
                    raise self._fail(f"refused: its sha256 differs from {FILE_LIST_NAME} (tampered)", name)
        return total

    def close(self) -> None:
        """Close the zip file."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def read_bundle_identity(bundle_path: str | os.PathLike[str], limits: BundleLimits = DEFAULT_LIMITS) -> tuple[str, str]:
    """(name, version) of a bundle, checked the same way an install checks them (used to sign)."""
    verifier = BundleVerifier(bundle_path, Policy(), limits)
    if not verifier.path.is_file():
        raise BundleError(f"bundle {verifier.path}: no such file")
    try:
        verifier.open()
    finally:
        verifier.close()
    return verifier.name, verifier.version


# --------------------------------------------------------------------------- install


def installed_version(plugins_dir: Path, name: str) -> str | None:
    """The version in ``plugins_dir/<name>/plugin.json``, or ``None`` if not installed."""
    path = Path(plugins_dir) / name / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        version = loads_bounded(path.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


class StagedBundle:
    """A verified bundle extracted into a staging folder, waiting for :meth:`commit` or :meth:`discard`.

    The UI shows :attr:`plan` (publisher, permissions, findings) and then
    commits or discards; :func:`install_bundle` does both in one call.
    """

    def __init__(self, plan: InstallPlan, staging: Path, plugins_dir: Path):
        self.plan = plan
        self.staging = staging
        self.plugins_dir = plugins_dir
        self._done = False

    def discard(self) -> None:
        """Remove the staging folder; nothing else was written."""
        if not self._done:
            shutil.rmtree(self.staging, ignore_errors=True)
            self._done = True

    def __enter__(self) -> "StagedBundle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def place(self) -> "PlacedBundle":
        """Move the staged folder into place atomically; the install is final only after
        :meth:`PlacedBundle.finish` (or undone by :meth:`PlacedBundle.roll_back`).

        The installed version (if any) is renamed aside first, kept until then. Lets a caller run
        the host's steps between the move and the decision on different threads (the admin panel
        migrates on its writer thread, then loads the plugin on the GUI thread)."""
        if self._done:
            raise BundleError(f"bundle {self.plan.bundle.name}: this staged install was already committed or discarded")
        plan = self.plan
        target = self.plugins_dir / plan.name
        result = InstallResult(plan.name, plan.version, plan.previous_version, target, plan)
        token = secrets.token_hex(4)
        aside: Path | None = None
        try:
            if target.exists() or target.is_symlink():
                aside = self.plugins_dir / f".previous-{plan.name}-{token}"
                os.rename(target, aside)
            try:
                os.rename(self.staging, target)
            except OSError:
                if aside is not None:
                    os.rename(aside, target)
                raise
        except OSError as exc:
            self.discard()
            raise BundleError(f"bundle {plan.bundle.name}: cannot move {plan.name} into place: {exc}") from exc
        self._done = True
        return PlacedBundle(result, aside, self.plugins_dir, token)

    def commit(
        self,
        post_install: Callable[[InstallResult], None] | None = None,
        on_rollback: Callable[[InstallResult], None] | None = None,
    ) -> InstallResult:
        """Move the staged folder into place atomically and run ``post_install``.

        The installed version (if any) is renamed aside first and deleted only
        after ``post_install`` returns; if the move or ``post_install`` fails,
        the new folder is removed, the old one renamed back, ``on_rollback`` is
        called, and :class:`BundleError` is raised. Settings and data live
        outside the plugin folder and are not touched.
        """
        placed = self.place()
        try:
            if post_install is not None:
                post_install(placed.result)
        except BaseException as exc:
            error = placed.roll_back(exc, on_rollback)
            if not isinstance(exc, Exception):
                raise
            raise error from exc
        return placed.finish()


class PlacedBundle:
    """A bundle moved into place (:meth:`StagedBundle.place`) whose install is not final yet."""

    def __init__(self, result: InstallResult, aside: Path | None, plugins_dir: Path, token: str):
        self.result = result
        self._aside = aside
        self._plugins_dir = plugins_dir
        self._token = token
        self._settled = False

    def finish(self) -> InstallResult:
        """Keep the new version: delete the previous one kept aside."""
        if not self._settled:
            self._settled = True
            if self._aside is not None:
                shutil.rmtree(self._aside, ignore_errors=True)
            log.info("installed %s %s into %s", self.result.name, self.result.version, self.result.path)
        return self.result

    def roll_back(self, exc: BaseException,
                  on_rollback: Callable[[InstallResult], None] | None = None) -> BundleError:
        """Undo the move because of ``exc``: remove the new folder, put the previous one back, call
        ``on_rollback``; returns the :class:`BundleError` (naming ``exc``) for the caller to raise."""
        plan = self.result.plan
        if not self._settled:
            self._settled = True
            target = self.result.path
            failed = self._plugins_dir / f".failed-{plan.name}-{self._token}"
            os.rename(target, failed)
            if self._aside is not None:
                os.rename(self._aside, target)
            shutil.rmtree(failed, ignore_errors=True)
            if on_rollback is not None:
                try:
                    on_rollback(self.result)
                except Exception:
                    log.exception("on_rollback for %s failed", plan.name)
        restored = f"version {plan.previous_version} restored" if self._aside else "nothing left installed"
        return BundleError(
            f"bundle {plan.bundle.name}: installing {plan.name} {plan.version} failed after the move "
            f"({type(exc).__name__}: {exc}); rolled back, {restored}"
        )


def stage_bundle(
    bundle_path: str | os.PathLike[str],
    plugins_dir: str | os.PathLike[str],
    policy: Policy | None = None,
    installed_version_lookup: Callable[[str], str | None] | None = None,
    *,
    sig_path: str | os.PathLike[str] | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
    manifest_validator: Callable[[Path], Any] | None = None,
    extra_grants: Iterable[str] = (),
) -> StagedBundle:
    """Verify a bundle and extract it into a staging folder under ``plugins_dir``.

    ``installed_version_lookup(name)`` returns the installed version or
    ``None`` (default: read ``plugins_dir/<name>/plugin.json``).
    ``manifest_validator(staged_folder)`` is the host's full manifest check;
    a :class:`CrmError` from it refuses the bundle. ``extra_grants`` add to
    the manifest permissions for the static checks (the policy's grants for
    the plugin are added automatically).
    """
    policy = policy or Policy()
    plugins_dir = Path(plugins_dir)
    verifier = BundleVerifier(bundle_path, policy, limits, sig_path)
    staging: Path | None = None
    try:
        verifier.check_signature()  # before the zip is opened
        verifier.open()
        lookup = installed_version_lookup or (lambda n: installed_version(plugins_dir, n))
        previous = lookup(verifier.name)
        if previous is not None:
            try:
                if Version(verifier.version) < Version(previous):
                    raise BundleError(
                        f"bundle {verifier.path.name}: refused: {verifier.name} {verifier.version} is older than the "
                        f"installed {previous} (downgrades are not allowed; uninstall first)"
                    )
            except InvalidVersion:
                log.warning("installed %s has an unreadable version %r; replacing it", verifier.name, previous)
        plugins_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{verifier.name}-", dir=plugins_dir))
        total = verifier.extract_to(staging)
        if manifest_validator is not None:
            try:
                manifest_validator(staging)
            except CrmError as exc:
                raise BundleError(f"bundle {verifier.path.name}: {MANIFEST_NAME}: {exc}") from None
        permissions = list(verifier.manifest.get("permissions", []))
        granted = set(permissions) | set(policy.grants_for(verifier.name)) | set(extra_grants)
        findings = static_checks.scan_plugin(staging, granted)
        if policy.strict_static_checks and static_checks.has_errors(findings):
            first = next(f for f in findings if f.severity == static_checks.ERROR)
            count = sum(1 for f in findings if f.severity == static_checks.ERROR)
            raise BundleError(
                f"bundle {verifier.path.name}: refused by the strict policy: {count} static-check error(s), "
                f"first: {first}"
            )
        denied = [p for p in permissions if not policy.permits(p)]
        warnings = list(verifier.warnings)
        if denied:
            warnings.append(f"the policy denies {', '.join(denied)}; the plugin will run without them")
        plan = InstallPlan(
            bundle=verifier.path, name=verifier.name, version=verifier.version, previous_version=previous,
            signature=verifier.signature, permissions=permissions, findings=findings,
            bundle_sha256=verifier.sha256 or "", file_count=len(verifier.listed), total_bytes=total,
            manifest=verifier.manifest, warnings=warnings,
        )
        record = {
            "bundle": verifier.path.name, "sha256": verifier.sha256, "name": plan.name, "version": plan.version,
            "keyId": plan.signature.key_id if plan.signature else None,
            "publicKey": plan.signature.public_key if plan.signature else None,
            "trusted": bool(plan.signature and plan.signature.trusted),
            # lets the host re-check, at every load, that a key the policy trusts signed this name and version
            "signature": verifier.signature_b64 if plan.signature else None,
            "installedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / INSTALL_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return StagedBundle(plan, staging, plugins_dir)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        verifier.close()


def install_bundle(
    bundle_path: str | os.PathLike[str],
    plugins_dir: str | os.PathLike[str],
    policy: Policy | None = None,
    installed_version_lookup: Callable[[str], str | None] | None = None,
    *,
    sig_path: str | os.PathLike[str] | None = None,
    limits: BundleLimits = DEFAULT_LIMITS,
    approve: Callable[[InstallPlan], bool] | None = None,
    post_install: Callable[[InstallResult], None] | None = None,
    on_rollback: Callable[[InstallResult], None] | None = None,
    manifest_validator: Callable[[Path], Any] | None = None,
) -> InstallResult:
    """Verify, stage, approve and atomically install (or update) a bundle.

    ``approve(plan)`` sees the publisher, permissions and findings and
    returns False to cancel. ``post_install(result)`` is the host's step
    (migrations, activation without restart); if it raises, the install is
    rolled back and :class:`BundleError` raised. On any failure, the plugins
    folder is exactly as before.
    """
    staged = stage_bundle(
        bundle_path, plugins_dir, policy, installed_version_lookup,
        sig_path=sig_path, limits=limits, manifest_validator=manifest_validator,
    )
    with staged:
        if approve is not None and not approve(staged.plan):
            raise BundleError(f"bundle {Path(bundle_path).name}: install of {staged.plan.name} cancelled; nothing changed")
        return staged.commit(post_install=post_install, on_rollback=on_rollback)


def recover_interrupted_installs(plugins_dir: str | os.PathLike[str]) -> list[str]:
    """Tidy up after a crash during an install; call at start before discovery.

    A ``.previous-<name>-*`` folder without ``<name>`` means the app died
    between the two renames: the previous version is put back. Staging and
    failed folders are removed. Returns what was done, for the log.
    """
    plugins_dir = Path(plugins_dir)
    done: list[str] = []
    if not plugins_dir.is_dir():
        return done
    for entry in sorted(plugins_dir.iterdir()):
        m = re.match(r"^\.(staging|previous|failed)-(.+)-[0-9a-z_]+$", entry.name)
        if not m or not entry.is_dir():
            continue
        kind, name = m.groups()
        target = plugins_dir / name
        if kind == "previous" and not target.exists():
            os.rename(entry, target)
            done.append(f"restored {name} from an interrupted install")
        else:
            shutil.rmtree(entry, ignore_errors=True)
            done.append(f"removed {entry.name}")
    for line in done:
        log.warning("plugins folder %s: %s", plugins_dir, line)
    return done
