"""Test fixtures. Every database test runs on SQLite and, when ``VAULT_TEST_POSTGRES_URL`` is set,
on PostgreSQL too. Each test gets its own fresh, migrated database: a copy of a template that
the migrations built once per run (SQLite: file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE).
So tests see real commits, real constraints and real triggers, and can open several connections.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import Session

from vault.app import create_app
from vault.config import Settings
from vault.db import reader, upgrade
from vault.runtime import Runtime

PG_URL = os.environ.get("VAULT_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", *(["postgres"] if PG_URL else [])]


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true but VAULT_TEST_POSTGRES_URL is not set")
    _cheap_argon2()


def _cheap_argon2() -> None:
    """Argon2id at its smallest cost for the tests run in this process: each client or staff
    account they create cost ~0.35 s of CPU hashing its secret (argon2-cffi's defaults, 64 MiB),
    a tenth of the whole suite. The cost protects stored secrets against guessing; no test is
    about it. The hashes stay Argon2id, verified and re-hashed by the same code (verify reads
    the parameters from the hash); `vault` processes the tests start keep the defaults."""
    from argon2 import PasswordHasher

    from vault.auth import service as auth_service
    from vault.staff import accounts

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    for module in (auth_service, accounts):
        module._hasher = cheap
        # the stand-in hash an unknown id is checked against costs what a real one does
        module._DUMMY_HASH = cheap.hash("unknown")


def _pg_admin():
    import psycopg

    url = make_url(PG_URL)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        # Under CI a missing PostgreSQL is a failure, never a skip.
        if IN_CI:
            raise RuntimeError(f"PostgreSQL at {url.host}:{url.port} is not reachable") from exc
        pytest.skip("PostgreSQL is not reachable")


# PostgreSQL: databases made ahead by a background thread. One CREATE DATABASE ... TEMPLATE
# waits on the server's disk for most of its time (measured 0.64 s, plus 0.24 s per DROP, on a
# slow disk), which it now spends while the previous test runs instead of before it.
PG_PREFETCH = 2


class Template:
    def __init__(self, backend: str, tmp: Path):
        self.backend = backend
        self.tmp = tmp
        self.name = f"vault_tpl_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            self.path = tmp / "template.db"
            upgrade(f"sqlite:///{self.path}")
            return
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        upgrade(self._pg_url(self.name))
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=PG_PREFETCH)
        self._stop = threading.Event()
        self._drops: list[Future[None]] = []
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drop")
        self._filler = threading.Thread(target=self._fill, name="pg-fill", daemon=True)
        self._filler.start()

    def _pg_url(self, name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def _create(self) -> str:
        name = f"vault_t_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}" STRATEGY FILE_COPY')
        return name

    def _fill(self) -> None:
        """Keep up to PG_PREFETCH fresh databases ready; a failure (or pytest's skip when the
        server is unreachable outside CI) is handed to the test that would have used one."""
        while not self._stop.is_set():
            try:
                item: str | BaseException = self._create()
            except BaseException as exc:  # re-raised in fresh()
                item = exc
            while not self._stop.is_set():
                try:
                    self._ready.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            else:
                if isinstance(item, str):
                    self._drop_now(item)
            if isinstance(item, BaseException):
                return

    def fresh(self) -> tuple[str, str | None]:
        """A new database with the migrated schema: (url, name to drop later)."""
        if self.backend == "sqlite":
            path = self.tmp / f"t_{uuid.uuid4().hex[:12]}.db"
            shutil.copyfile(self.path, path)
            return f"sqlite:///{path}", None
        item = self._ready.get()
        if isinstance(item, BaseException):
            self._ready.put(item)  # every later test fails the same way
            raise item
        return self._pg_url(item), item

    def _drop_now(self, name: str) -> None:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self, name: str | None) -> None:
        if name is not None:  # in the background: the next test need not wait for the disk
            self._drops.append(self._dropper.submit(self._drop_now, name))

    def close(self) -> None:
        if self.backend != "postgres":
            return
        self._stop.set()
        self._filler.join()
        while not self._ready.empty():
            item = self._ready.get()
            if isinstance(item, str):
                self.drop(item)
        self._dropper.shutdown(wait=True)
        for done in self._drops:
            done.result()  # a failed DROP fails the run, as it did in the test's teardown
        self._drop_now(self.name)


@pytest.fixture(scope="session", params=BACKENDS)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tpl = Template(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield tpl
    tpl.close()


@pytest.fixture
def backend(template: Template) -> str:
    return template.backend


@pytest.fixture
def db_url(template: Template) -> Iterator[str]:
    url, name = template.fresh()
    yield url
    template.drop(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault-data"


@pytest.fixture
def settings(db_url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=db_url,
        public_url="http://testserver",
        audit_seal_interval=0,  # tests seal explicitly; tests/audit starts a sealer itself
        _env_file=None,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def app(runtime: Runtime):
    return create_app(runtime)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    """A session for arranging and inspecting; tests commit what the app must see.

    On SQLite its transactions begin deferred, so an open read does not hold the write lock
    the app needs; end a read with ``session.rollback()`` before writing through it again."""
    with Session(reader(runtime.engine), expire_on_commit=False) as s:
        yield s
