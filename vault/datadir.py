"""The data directory's permissions: the directory 0700, every file in it 0600.

The key file and the SQLite files (``vault.db``, ``-wal``, ``-shm``) hold everything an attacker
needs, so they are created readable by the vault's own user only: :func:`ensure_dir` for the
directory, :func:`create_file` for a file made before the library that fills it opens it (SQLite
gives ``-wal`` and ``-shm`` the mode of the database file). :func:`check` runs at start
(``Runtime.build``, so ``vault serve`` too): a key file or database that group or others may read
is a warning, and with ``VAULT_ENVIRONMENT=production`` a refusal to start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO

log = logging.getLogger("vault")


class UnsafePermissions(RuntimeError):
    """The key file or the database may be read by group or others (production refuses)."""


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; an existing directory is left as
    it is (:func:`check` reports its files)."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def create_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists."""
    ensure_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def exposed(paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """``(path, mode)`` of the existing ``paths`` that group or others may access."""
    found = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & _OTHERS:
            found.append((path, mode))
    return found


def check(paths: Iterable[Path], *, environment: str) -> None:
    """Warn about each of ``paths`` that group or others may read; with
    ``environment == "production"`` raise :class:`UnsafePermissions` instead."""
    bad = exposed(paths)
    if not bad:
        return
    listed = ", ".join(f"{p} ({oct(m)})" for p, m in bad)
    message = (
        f"readable by group or others: {listed}; they hold the vault's keys or data "
        f"(chmod 600 the files, chmod 700 their directory)"
    )
    if environment == "production":
        raise UnsafePermissions(f"refusing to start: {message}")
    log.warning("%s", message)
