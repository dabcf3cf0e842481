"""Shared helpers for the benchmark scripts: a throwaway vault and a machine description."""

from __future__ import annotations

import os
import platform
import tempfile
from contextlib import contextmanager
from pathlib import Path

from vault.config import Settings
from vault.db import upgrade
from vault.runtime import Runtime


@contextmanager
def throwaway_runtime(database_url: str | None = None):
    """A migrated vault in a temporary directory (SQLite unless a URL is given)."""
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url, _env_file=None)
        upgrade(settings.resolved_database_url)
        rt = Runtime.build(settings)
        try:
            yield rt
        finally:
            rt.engine.dispose()


@contextmanager
def scratch_database(database_url: str | None):
    """None for SQLite; for a PostgreSQL URL, a fresh database beside the named one, dropped
    afterwards (the named database is only used to connect)."""
    if not database_url:
        yield None
        return
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(database_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"vault_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )
