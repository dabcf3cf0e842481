"""The mail drop: in development (no ``VAULT_SMTP_URL``) every mail is written to
``<data dir>/mail/<mail id>.eml`` instead of being sent. The directory is 0700 and each file
0600, like the rest of the data directory (it holds addresses and links with tokens).

A drop file is written while the deliverer holds the mail's row (:mod:`vault.mail.delivery`),
so an erasure, which deletes the row first, either prevents the file or removes it after its
commit (:func:`vault.mail.outbox.shred`). Retention removes the files with their rows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from uuid import UUID

from vault import datadir
from vault.config import Settings
from vault.mail.wire import wire_bytes

DIR_NAME = "mail"


def drop_dir(settings: Settings) -> Path:
    return settings.data_dir / DIR_NAME


def path_of(directory: Path, mail_id: UUID) -> Path:
    return directory / f"{mail_id}.eml"


def write(directory: Path, mail_id: UUID, data: bytes) -> Path:
    """Write one drop file atomically (a temporary 0600 file renamed into place, fsync'd)."""
    datadir.ensure_dir(directory)
    final = path_of(directory, mail_id)
    tmp = directory / f".{mail_id}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, datadir.FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return final


def read(directory: Path, mail_id: UUID) -> bytes | None:
    try:
        return path_of(directory, mail_id).read_bytes()
    except FileNotFoundError:
        return None


def remove(directory: Path | None, ids: Iterable[UUID]) -> int:
    """Delete the drop files of these mails (missing ones are fine); returns how many went."""
    if directory is None:
        return 0
    removed = 0
    for mail_id in ids:
        for path in (path_of(directory, mail_id), directory / f".{mail_id}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += path.suffix == ".eml"
    return removed


def remove_older_than(directory: Path, cutoff: float) -> int:
    """Delete drop files last written before ``cutoff`` (a Unix time): the retention of files
    no outbox row names any more, such as those of ``vault mail test``."""
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.glob("*.eml"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


class MailDrop:
    """The development transport: :meth:`send` writes the message to the drop directory."""

    # the file is written inside the transaction that holds the mail's row (see module doc)
    in_transaction = True

    def __init__(self, directory: Path):
        self.directory = directory

    def send(self, message: EmailMessage, *, mail_id: UUID, sender: str, recipient: str) -> None:
        write(self.directory, mail_id, wire_bytes(message))

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"MailDrop({self.directory})"
