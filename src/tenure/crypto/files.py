"""Crash-safe small-file writes, private files and directories, and the lock files
that elect one process.

Everything Tenure keeps on disk is for its own user only: directories 0700, files
0600 (docs/hardening.md, "Files on disk"). The CLI sets a umask of 0o077 when it
starts, so that files other libraries create (SQLite's ``-wal`` and ``-shm``,
obstore's site files) are private too; the functions here set the modes
explicitly, whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077
"""The umask of every ``tenure`` process: nothing it creates is for group or others."""


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (an existing directory
    keeps its mode: ``wider_than_private`` reports it)."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was first
            directory.mkdir(mode=PRIVATE_DIR)
            directory.chmod(PRIVATE_DIR)  # mkdir's mode passes through the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then it is left as it is).

    SQLite gives a database's ``-wal`` and ``-shm`` files the mode of the database
    file, so creating it 0600 first makes all three private."""
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
        finally:
            os.close(fd)


def make_private(path: Path) -> None:
    """Restrict a file Tenure just wrote to 0600 (0700 for a directory)."""
    path.chmod(PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)


def wider_than_private(roots: Iterable[Path]) -> Iterator[tuple[Path, int]]:
    """Each existing path under ``roots`` (the roots included) that its group or
    others may read, write or enter, with its mode bits. Symbolic links are not
    followed below a root."""
    for root in roots:
        if not root.exists():
            continue
        for path in _walk(root):
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077 and not path.is_symlink():
                yield path, mode


def _walk(root: Path) -> Iterator[Path]:
    yield root
    if root.is_dir():
        for directory, subdirectories, files in os.walk(root):
            for name in sorted(subdirectories) + sorted(files):
                yield Path(directory) / name


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    Written to a temporary file in the same directory, fsynced, renamed over the
    target, and the directory fsynced so the rename itself is durable. The file is
    ``mode`` (0600 unless told otherwise); a missing directory is created 0700.
    """
    make_private_dir(path.parent)
    # A name of its own per call: two writers of one file (threads of one process
    # included) must never rename each other's half-written temporary file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ProcessLock:
    """An ``flock`` on a file, taken without waiting: one process at a time holds
    it (the shipper, the mirror). Released by ``release`` or when the process exits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
