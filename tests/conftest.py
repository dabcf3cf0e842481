"""Test fixtures. Every database test runs on SQLite and, when ``VAULT_TEST_POSTGRES_URL`` is set,
on PostgreSQL too. Each test gets its own fresh, migrated database: a copy of a template that
the migrations built once per run (SQLite: file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE).
So tests see real commits, real constraints and real triggers, and can open several connections.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
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


class Template:
    def __init__(self, backend: str, tmp: Path):
        self.backend = backend
        self.tmp = tmp
        self.name = f"vault_tpl_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            self.path = tmp / "template.db"
            upgrade(f"sqlite:///{self.path}")
        else:
            with _pg_admin() as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            upgrade(self._pg_url(self.name))

    def _pg_url(self, name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def fresh(self) -> tuple[str, str | None]:
        """A new database with the migrated schema: (url, name to drop later)."""
        if self.backend == "sqlite":
            path = self.tmp / f"t_{uuid.uuid4().hex[:12]}.db"
            shutil.copyfile(self.path, path)
            return f"sqlite:///{path}", None
        name = f"vault_t_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}" STRATEGY FILE_COPY')
        return self._pg_url(name), name

    def drop(self, name: str | None) -> None:
        if name is None:
            return
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.backend == "postgres":
            self.drop(self.name)


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
