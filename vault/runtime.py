"""The composition root: settings, keys, policy and engine, made once per process.

The app and the CLI both build one :class:`Runtime`; routes get it through :data:`RuntimeDep`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from vault import datadir
from vault.config import Settings
from vault.crypto import Envelope, KeyMaterial, load_key_material
from vault.crypto.keys import KEY_FILE_NAME
from vault.crypto.signing import Signer
from vault.db import ensure_schema, make_engine, sqlite_files, transaction
from vault.policy import Policy, load_policy
from vault.ratelimit import RateLimiter

T = TypeVar("T")


@dataclass(frozen=True, repr=False)
class Runtime:
    settings: Settings
    keys: KeyMaterial
    envelope: Envelope
    policy: Policy
    engine: Engine
    signer: Signer
    # counters of the rate-limited doors (token endpoint, magic links); one per app, so a
    # test's fresh Runtime starts with fresh counters
    limiter: RateLimiter
    # SQLite has one writer: running its transactions on one dedicated thread avoids lock
    # hand-offs between pool threads fighting for the GIL. PostgreSQL uses the shared pool.
    db_executor: ThreadPoolExecutor | None = field(default=None)

    async def run_db(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a whole database transaction off the event loop."""
        if self.db_executor is None:
            return await run_in_threadpool(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            self.db_executor, partial(fn, *args, **kwargs)
        )

    async def transaction(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``fn(session=..., **kwargs)`` as one transaction in one worker thread: commit when
        it returns, roll back when it raises. For hot routes, instead of one thread hop per
        dependency (session, token check, endpoint, commit)."""
        return await self.run_db(self._in_transaction, fn, kwargs)

    def _in_transaction(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
        with transaction(self.engine) as session:
            return fn(session=session, **kwargs)

    @classmethod
    def build(cls, settings: Settings | None = None, *, engine: Engine | None = None) -> Runtime:
        settings = settings or Settings()
        keys = load_key_material(settings)
        reload = None
        if settings.master_keys is None:  # the local key file may be rotated by the CLI

            def reload() -> KeyMaterial:
                return load_key_material(settings, create=False)

        engine = engine or make_engine(settings.resolved_database_url)
        # A key file or database others may read: a warning, a refusal in production.
        datadir.check(
            [settings.data_dir / KEY_FILE_NAME, *sqlite_files(settings.resolved_database_url)],
            environment=settings.environment,
        )
        return cls(
            settings=settings,
            keys=keys,
            envelope=Envelope(keys, reload=reload),
            policy=load_policy(settings.resolved_policies_dir),
            engine=engine,
            signer=Signer(keys),
            limiter=RateLimiter(settings, key=keys.index_key),
            db_executor=(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
                if engine.dialect.name == "sqlite"
                else None
            ),
        )


async def get_runtime(request: Request) -> Runtime:  # async: no thread hop for an attribute
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@contextmanager
def cli_runtime(settings: Settings | None = None) -> Iterator[Runtime]:
    """The Runtime of one CLI command (settings from the environment); its connections are
    closed when the command ends. On the embedded default (SQLite) the schema is migrated first,
    as ``vault serve`` does; on another database an old schema is refused
    (:class:`vault.db.SchemaNotCurrent`, one line from ``vault``)."""
    runtime = Runtime.build(settings)
    try:
        url = runtime.settings.resolved_database_url
        embedded = url.startswith("sqlite") or runtime.settings.database_url is None
        ensure_schema(runtime.engine, url, migrate=embedded)
        yield runtime
    finally:
        runtime.engine.dispose()
