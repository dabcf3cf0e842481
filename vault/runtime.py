"""The composition root: settings, keys, policy and engine, made once per process.

The app and the CLI both build one :class:`Runtime`; routes get it through :data:`RuntimeDep`.
"""

from __future__ import annotations

import asyncio
import threading
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
from vault.db import ensure_schema, make_engine, sqlite_files, transaction, transaction_group
from vault.policy import Policy, load_policy
from vault.ratelimit import RateLimiter

T = TypeVar("T")
# PostgreSQL: writer threads of the group commit (each holds one pooled connection while busy)
WRITER_LANES = 4


class GroupCommit:
    """Group commit for hot writes: requests that arrive while a writer thread is busy are run
    together, one transaction and one commit for all (:func:`vault.db.transaction_group`);
    each request's answer is handed back only after that commit. No waiting for company: a
    lone request runs at once, and groups form by themselves under load (while one group
    commits, the next one queues). One group per executor task, so reads queued on the same
    executor (SQLite's one DB thread) are not starved by a stream of writes.

    Several lanes (PostgreSQL: each with a writer thread and connection of its own, so one
    lane's round trips overlap another's work): a request goes to the lane of its ``key``
    (the customer), so one customer's writes stay in order in one lane and two lanes of this
    process never wait for each other's row locks."""

    def __init__(self, engine: Engine, executors: list[ThreadPoolExecutor], max_group: int = 64):
        self.engine = engine
        self.max_group = max_group
        self._lanes = [_Lane(self, ex) for ex in executors]

    async def submit(self, fn: Callable[..., T], /, *, key: Any = None, **kwargs: Any) -> T:
        lane = self._lanes[hash(key) % len(self._lanes)]
        return await lane.submit(partial(_call_with_session, fn, kwargs))


class _Lane:
    def __init__(self, group: GroupCommit, executor: ThreadPoolExecutor):
        self.group = group
        self.executor = executor
        self._pending: list[tuple[Callable[[Any], Any], asyncio.Future, Any]] = []
        self._lock = threading.Lock()
        self._scheduled = False

    async def submit(self, call: Callable[[Any], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._lock:
            self._pending.append((call, future, loop))
            start = not self._scheduled
            self._scheduled = True
        if start:
            self.executor.submit(self._run_one_group)
        return await future

    def _run_one_group(self) -> None:
        with self._lock:
            group = self._pending[: self.group.max_group]
            del self._pending[: self.group.max_group]
        try:
            outcomes = transaction_group(self.group.engine, [call for call, _f, _l in group])
        except BaseException as exc:  # e.g. an after-commit hook failed: tell every caller
            outcomes = [(False, exc)] * len(group)
        by_loop: dict[Any, list] = {}
        for (_call, future, loop), outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, answers in by_loop.items():  # one wake-up of the event loop per group
            loop.call_soon_threadsafe(_resolve, answers)
        with self._lock:
            if self._pending:
                self.executor.submit(self._run_one_group)
            else:
                self._scheduled = False


def _call_with_session(fn: Callable[..., T], kwargs: dict[str, Any], session: Any) -> T:
    return fn(session=session, **kwargs)


def _resolve(answers: list[tuple[asyncio.Future, tuple[bool, Any]]]) -> None:
    for future, (ok, value) in answers:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


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
    # group commit of the hot consent write (:meth:`grouped`): on SQLite on the DB thread, on
    # PostgreSQL on a writer thread of its own
    group_commit: GroupCommit | None = field(default=None)

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

    async def grouped(self, fn: Callable[..., T], /, *, key: Any, **kwargs: Any) -> T:
        """Like :meth:`transaction`, but run with other requests' writes in one commit
        (:class:`GroupCommit`); writes with the same ``key`` (the customer) run in order.
        ``fn`` must be safe to run again alone if its group fails."""
        if self.group_commit is None:
            return await self.transaction(fn, **kwargs)
        return await self.group_commit.submit(fn, key=key, **kwargs)

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
        db_executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
            if engine.dialect.name == "sqlite"
            else None
        )
        writers = (
            [db_executor]
            if db_executor is not None
            else [
                ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"writer{i}")
                for i in range(WRITER_LANES)
            ]
        )
        return cls(
            settings=settings,
            keys=keys,
            envelope=Envelope(keys, reload=reload),
            policy=load_policy(settings.resolved_policies_dir),
            engine=engine,
            signer=Signer(keys),
            limiter=RateLimiter(settings, key=keys.index_key),
            db_executor=db_executor,
            group_commit=GroupCommit(engine, writers),
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
