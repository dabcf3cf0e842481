"""``vault backup`` and ``vault restore``: snapshots that cannot undo an erasure.

A backup is a directory (0700, files 0600):

- ``vault.db``: on SQLite, an online, consistent copy made with SQLite's backup API while the
  server runs (``sqlite3.Connection.backup``); on PostgreSQL, ``vault.pgdump`` made by
  ``pg_dump --format=custom`` when ``pg_dump`` is on ``PATH`` (else ``--keys-only`` and the
  procedure in docs/keys.md);
- ``keys.json``: a copy of the local key file (with ``VAULT_MASTER_KEYS`` there is none: the
  manifest says the keys are not in the backup);
- ``manifest.json``: time, vault version, database kind, Alembic revision, the erasure journal's
  position when the snapshot began, and a SHA-256 of every file.

``vault restore`` puts the snapshot into the configured database and data directory (refusing a
non-empty target without ``--force``), migrates it to head, then replays the erasure journal
(:func:`vault.dsr.erasure.reapply`): every customer erased after (or while) the snapshot was
taken is shredded again and gets its original certificate back. The whole journal is replayed,
not only the lines after the recorded position: a line is written before its erasure commits,
so lines just before the position may belong to erasures the snapshot does not contain, and the
replay is idempotent. On SQLite the restored file is then rewritten (``VACUUM``) and its WAL
truncated, so no byte of a re-erased customer remains in the data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from vault import __version__
from vault.config import Settings
from vault.crypto.keys import KEY_FILE_NAME, LocalKeyFile
from vault.db import make_engine, transaction, upgrade, utcnow
from vault.dsr import erasure
from vault.provenance import Caller

MANIFEST = "manifest.json"
SQLITE_FILE = "vault.db"
PG_DUMP_FILE = "vault.pgdump"
FORMAT = 1
RESTORE = Caller("cli:restore")
KEYS_NOT_INCLUDED = "not in this backup: the keys come from VAULT_MASTER_KEYS"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why (no secrets in it)."""


@dataclass
class RestoreReport:
    database: str
    keys: str
    journal_entries: int
    reerased: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _private_copy(src: Path, dst: Path) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
        shutil.copyfileobj(fh, out)
        out.flush()
        os.fsync(out.fileno())


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(parsed.database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL for pg_dump/pg_restore, the password in the environment (not in argv)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    dsn = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return dsn, env


def journal_position(path: Path) -> dict[str, int]:
    if not path.exists():
        return {"lines": 0, "bytes": 0}
    data = path.read_bytes()
    return {"lines": data.count(b"\n"), "bytes": len(data)}


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table: not migrated
        return None
    finally:
        engine.dispose()


def _prepare_target(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path} exists and is not an empty directory")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def backup(settings: Settings, path: Path, *, keys_only: bool = False) -> dict[str, Any]:
    """Write a backup into the empty (or new) directory ``path``; returns the manifest."""
    url = settings.resolved_database_url
    db_file = _sqlite_path(url)
    pg_dump = shutil.which("pg_dump")
    if db_file is None and not keys_only and pg_dump is None:
        raise BackupError(
            "PostgreSQL: pg_dump is not on PATH; run the pg_dump procedure of docs/keys.md "
            "and 'vault backup PATH --keys-only'"
        )
    keyfile = settings.data_dir / KEY_FILE_NAME
    provider = str(getattr(settings, "key_provider", None) or "file").lower()
    if settings.master_keys is None and provider != "pkcs11" and not keyfile.exists():
        raise BackupError(f"no key file at {keyfile}")
    _prepare_target(path)
    journal = settings.data_dir / erasure.JOURNAL_NAME
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": utcnow().isoformat(),
        "vault_version": __version__,
        "database": "sqlite" if db_file is not None else "postgresql",
        "keys_only": keys_only,
        # where the journal stood when the snapshot began (restore replays all of it)
        "erasure_journal": journal_position(journal),
        "files": {},
    }
    if not keys_only:
        if db_file is not None:
            if not db_file.exists():
                raise BackupError(f"no database at {db_file}")
            target = path / SQLITE_FILE
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            src = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)  # one consistent snapshot, also while the server writes
                manifest["alembic_revision"] = dst.execute(
                    "SELECT version_num FROM alembic_version"
                ).fetchone()[0]
            finally:
                dst.close()
                src.close()
        else:
            manifest["alembic_revision"] = _revision(url)
            dsn, env = _libpq(url)
            target = path / PG_DUMP_FILE
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            done = subprocess.run(  # noqa: S603 (fixed argv, the URL is the operator's own)
                [str(pg_dump), "--format=custom", "--no-owner", f"--file={target}", dsn],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    else:
        manifest["alembic_revision"] = _revision(url)
    manifest["key_provider"] = provider
    if provider == "pkcs11":  # the KEKs never leave the token; the file holds the rest
        manifest["keks"] = "not in this backup: they stay in the PKCS#11 token"
    if settings.master_keys is None and keyfile.exists():
        _private_copy(keyfile, path / KEY_FILE_NAME)
        manifest["keys"] = KEY_FILE_NAME
    elif settings.master_keys is not None:
        manifest["keys"] = KEYS_NOT_INCLUDED
    else:
        manifest["keys"] = "not in this backup: the keys stay in the PKCS#11 token"
    for name in (SQLITE_FILE, PG_DUMP_FILE, KEY_FILE_NAME):
        if (path / name).exists():
            manifest["files"][name] = _sha256(path / name)
    fd = os.open(path / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return manifest


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupError(f"{path} holds no readable {MANIFEST}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown backup format {manifest.get('format')!r}")
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.exists() or _sha256(file) != digest:
            raise BackupError(f"{path}: {name} is missing or does not match the manifest")
    return manifest


def _restore_keys(settings: Settings, path: Path, manifest: dict[str, Any], force: bool) -> str:
    if manifest.get("keys") != KEY_FILE_NAME:
        if str(getattr(settings, "key_provider", None) or "").lower() == "pkcs11":
            return "from the PKCS#11 token"
        if settings.master_keys is None:
            raise BackupError(
                "the backup holds no key file (made with VAULT_MASTER_KEYS): set the same "
                "VAULT_MASTER_KEYS, VAULT_INDEX_KEY and VAULT_SIGNING_SEED to restore it"
            )
        return "from VAULT_MASTER_KEYS"
    if settings.master_keys is not None:
        return "from VAULT_MASTER_KEYS (the backup's key file was not installed)"
    source, target = path / KEY_FILE_NAME, settings.data_dir / KEY_FILE_NAME
    if target.exists():
        if target.read_bytes() == source.read_bytes():
            return f"{target} (unchanged)"
        if not force:
            raise BackupError(f"{target} exists and differs from the backup's: use --force")
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_suffix(".restore")
    _private_copy(source, tmp)
    os.replace(tmp, target)
    LocalKeyFile(target).load()  # readable and well-formed
    return str(target)


def _sqlite_nonempty(db_file: Path) -> bool:
    if not db_file.exists() or db_file.stat().st_size == 0:
        return False
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.close()


def _restore_sqlite(source: Path, db_file: Path, force: bool) -> None:
    if _sqlite_nonempty(db_file) and not force:
        raise BackupError(f"{db_file} is not empty: use --force to overwrite it")
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    db_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(db_file)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _restore_postgres(source: Path, url: str, force: bool) -> None:
    if _revision(url) is not None and not force:
        raise BackupError("the configured PostgreSQL database is not empty: use --force")
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupError("pg_restore is not on PATH")
    dsn, env = _libpq(url)
    argv = [pg_restore, "--clean", "--if-exists", "--no-owner", "--exit-on-error", "-d", dsn]
    done = subprocess.run(  # noqa: S603 (fixed argv, the URL is the operator's own)
        [*argv, str(source)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")


def _merge_journals(own: Path, others: list[Path]) -> list[erasure.JournalEntry]:
    """Every entry of the data directory's journal and the given ones; entries only in the
    given journals are appended to the data directory's (so they survive the next restore)."""
    entries = list(erasure.read_journal(own))
    seen = {e.certificate.id for e in entries}
    new: list[erasure.JournalEntry] = []
    for path in others:
        if path.resolve() == own.resolve():
            continue
        if not path.exists():
            raise BackupError(f"no erasure journal at {path}")
        for entry in erasure.read_journal(path):
            if entry.certificate.id not in seen:
                seen.add(entry.certificate.id)
                new.append(entry)
    if new:
        erasure.append_journal(own, [e.certificate for e in new])
    return entries + new


def _scrub_sqlite(db_file: Path) -> None:
    """Rewrite the restored file without free pages and empty its WAL: nothing the replay
    removed stays on disk."""
    conn = sqlite3.connect(db_file, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def restore(
    settings: Settings, path: Path, *, force: bool = False, journals: list[Path] | None = None
) -> RestoreReport:
    """Restore the backup in ``path`` into the configured database and data directory, then
    re-apply every erasure of the erasure journal(s): the data directory's and ``journals``."""
    manifest = _read_manifest(path)
    url = settings.resolved_database_url
    db_file = _sqlite_path(url)
    kind = "sqlite" if db_file is not None else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(f"the backup is of {manifest['database']}, the vault uses {kind}")
    keys = _restore_keys(settings, path, manifest, force)
    if db_file is not None:
        if manifest["keys_only"]:
            raise BackupError("a --keys-only backup holds no SQLite database")
        _restore_sqlite(path / SQLITE_FILE, db_file, force)
        database = str(db_file)
    elif not manifest["keys_only"]:
        _restore_postgres(path / PG_DUMP_FILE, url, force)
        database = "PostgreSQL (pg_restore of vault.pgdump)"
    else:
        # keys-only: the operator restored their own dump (docs/keys.md); replay on it
        database = "PostgreSQL (restored by the operator)"
    upgrade(url)
    own = settings.data_dir / erasure.JOURNAL_NAME
    entries = _merge_journals(own, list(journals or ()))
    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            reerased = erasure.reapply(session=session, entries=entries, by=RESTORE)
        if db_file is None and reerased:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM"))  # the replay's dead tuples
    finally:
        engine.dispose()
    if db_file is not None:
        _scrub_sqlite(db_file)
    return RestoreReport(
        database=database,
        keys=keys,
        journal_entries=len(entries),
        reerased=[str(c) for c in reerased],
    )
