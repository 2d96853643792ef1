"""Writing files the user names, safely: :func:`atomic_output` (docs/reliability.md).

Every command that writes a file at a path the user chose (``export``, ``db backup``,
``plugin pack``, ``plugin sign``, ``keys generate``; the UI's export dialog after the
merge) goes through :func:`atomic_output`:

* the target is checked **before** any work: it must not be a file the app owns (the
  database and its ``-wal``/``-shm``/``-journal`` files, anything under the home's
  ``backups/``, ``plugins/``, ``plugin-data/``, ``plugin-settings/``, ``logs/``, or the
  home's settings, policy and plugin-state files), even through a symlink or a hard link;
  it must not be a folder; its folder must exist; an existing file is replaced only with
  ``force=True``;
* the data is written to a hidden temporary file in the target's folder
  (``.<name>.<random>.partial``), flushed and fsynced, and renamed over the target only
  when the ``with`` block ends without an exception; on any error (disk full, no
  permission, Ctrl+C) the temporary file is removed and the target is as it was.

Errors are :class:`OutputError` (a :class:`~crm_desktop.errors.CrmError`): one line
naming the path and the reason. Example::

    from crm_desktop.files import atomic_output, check_output

    with atomic_output(path, force=args.force, protected=home.owned_paths()) as out:
        out.write("...")            # text; binary=True gives a binary stream
    # or, for tools that want a file name (SQLite's backup API):
    with atomic_output(path, protected=..., open_file=False) as tmp_path:
        write_somehow(tmp_path)
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from crm_desktop.errors import CrmError

PARTIAL_SUFFIX = ".partial"


class OutputError(CrmError):
    """The file cannot be written there; the message names the path and the reason."""

    def __init__(self, path: os.PathLike[str] | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError ("no space left on the device", "permission denied", ...)."""
    reasons = {
        errno.ENOSPC: "no space left on the device",
        errno.EFBIG: "the file would be too large (disk full or file size limit)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "the file system is read-only",
        errno.EISDIR: "is a folder, not a file",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENOENT: "no such file or folder",
        errno.EEXIST: "exists already",
        errno.ENAMETOOLONG: "the name is too long",
        errno.EXDEV: "cannot move across file systems",
    }
    return reasons.get(exc.errno or 0, (exc.strerror or str(exc)).lower())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def protected_reason(path: Path, protected: Iterable[os.PathLike[str] | str]) -> str | None:
    """Why ``path`` is one of the ``protected`` paths (or inside a protected folder), or None."""
    resolved = Path(os.path.abspath(path)).resolve()
    for item in protected:
        guard = Path(item)
        guard_resolved = guard.resolve()
        if resolved == guard_resolved or _same_file(resolved, guard_resolved):
            return f"is a file crm-desktop owns ({guard}); choose another file name"
        if guard_resolved.is_dir() and guard_resolved in resolved.parents:
            return f"is inside a folder crm-desktop owns ({guard}); choose another folder"
    return None


def check_output(path: os.PathLike[str] | str, *, force: bool = False,
                 protected: Iterable[os.PathLike[str] | str] = ()) -> Path:
    """Check that ``path`` may be written (see the module docstring); returns it as a Path.

    Call it before long work (opening the database, reading every row) so that a bad
    target costs nothing; :func:`atomic_output` calls it again just before writing."""
    path = Path(path)
    reason = protected_reason(path, protected)
    if reason:
        raise OutputError(path, reason)
    if path.is_dir():
        raise OutputError(path, "is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(path, f"the folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(path, f"{parent} is a file, not a folder")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputError(path, "exists already; choose another name or pass --force to replace it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, f"no permission to write in {parent}")
    return path


@contextlib.contextmanager
def atomic_output(path: os.PathLike[str] | str, *, force: bool = False,
                  protected: Iterable[os.PathLike[str] | str] = (), binary: bool = False,
                  encoding: str = "utf-8", newline: str | None = None, mode: int = 0o644,
                  open_file: bool = True) -> Iterator[Any]:
    """Write ``path`` all at once: yields a stream (or, with ``open_file=False``, the temporary
    file's path) and renames it into place when the block ends without an exception.

    ``force`` allows replacing an existing file; ``protected`` lists files and folders that
    must never be written (``Home.owned_paths()``); ``mode`` is the new file's permission
    bits, set at creation (0o600 for private keys). Raises :class:`OutputError`.
    """
    protected = list(protected)
    target = check_output(path, force=force, protected=protected)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    stream: IO[Any] | None = None
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except OSError as exc:
            raise OutputError(target, f"cannot create a file in {target.parent}: {describe_os_error(exc)}") from None
        if open_file:
            stream = (os.fdopen(fd, "wb") if binary
                      else os.fdopen(fd, "w", encoding=encoding, newline=newline))
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        else:
            os.close(fd)
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        # the target may have appeared (or become protected) while we worked
        check_output(target, force=force, protected=protected)
        if mode & 0o077 == 0:  # private (keys): exactly these bits, whatever the umask
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(target, f"writing failed: {describe_os_error(exc)}; nothing was written") from None
    finally:
        if stream is not None and not stream.closed:
            with contextlib.suppress(OSError):
                stream.close()
        for leftover in (tmp, *(Path(str(tmp) + s) for s in ("-journal", "-wal", "-shm"))):
            with contextlib.suppress(OSError):
                leftover.unlink()  # (the SQLite side files appear when a database is written there)
