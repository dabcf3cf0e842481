"""Engine, transactions, shared column types and migrations.

One way to run a transaction: :func:`transaction` commits when its block ends and rolls back when
it raises. The request's session (:func:`get_session`), the hot routes (``Runtime.transaction``),
the worker, the sealer, retention and the CLI all use it, so a change and the evidence written
beside it (consent event, audit event, outbox row) commit together or not at all. Services never
commit; nothing else in ``vault/`` calls ``commit()``. :func:`transaction_group` is the same
transaction for several requests at once (group commit of the hot consent write): all of them
commit together, or each runs again alone in :func:`transaction`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import Depends, Request
from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError
from sqlalchemy import DateTime, Engine, LargeBinary, MetaData, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from vault import datadir, shipped
from vault.errors import VaultError

log = logging.getLogger("vault.db")

# Stable constraint names, so Alembic migrations name the same thing on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

MIGRATIONS_DIR = shipped("migrations")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone; we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Bytes = LargeBinary


# --- the instants the vault accepts -------------------------------------------------------------

# Every timestamp a client sends (bodies, query parameters, import lines, cursors that carry one)
# lies in [EARLIEST, LATEST): nothing of a consent vault happened before 1900 or after 2100, and
# outside that range a time-zone conversion can leave datetime's range (0001-01-01T00:00+01:00
# is year 0 in UTC) or the database's. One bound, one type, every door.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "datetime_out_of_range"
OUT_OF_RANGE_MESSAGE = "a time between 1900-01-01 and 2100-12-31 (UTC), with a time zone"


def in_range(value: datetime) -> bool:
    """Whether an aware ``value`` lies in [EARLIEST, LATEST) (compared in UTC, no conversion)."""
    return EARLIEST <= value < LATEST


def _bounded(value: datetime) -> datetime:
    if not in_range(value):
        raise PydanticCustomError(OUT_OF_RANGE, OUT_OF_RANGE_MESSAGE)
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_bounded)]
"""The type of every timestamp a request carries: ISO 8601 with a time zone, 1900 to 2100;
anything else is 422 ``validation_error`` (type ``datetime_out_of_range``), never a 500."""


# The WAL file is cut back to this size whenever SQLite restarts it (after a checkpoint), so a
# large import does not leave a WAL of its size, full of stale frames, for as long as the server
# runs. Erasures do not rely on it: they truncate the WAL to zero (scrub_deleted).
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
# How long an erasure waits for readers to let go of the WAL before it reports the on-disk
# cleanup as unfinished (ErasureIncomplete); each try waits up to CHECKPOINT_TRY in SQLite's busy
# handler. The readers of this code base are short: the audience export reads one batch per
# transaction and sends it after the transaction ended; the sealer's reads and writes are short
# transactions. So none of them holds the WAL between batches or ticks.
CHECKPOINT_PATIENCE = 2.0
CHECKPOINT_TRY = 0.2
_SQLITE_FILE = "vault_sqlite_file"


@dataclass
class _SQLiteFile:
    """Per engine: the in-process write lock, and whether deleted bytes may still sit in the WAL
    because an erasure's checkpoint could not finish (the next transaction's commit retries)."""

    write_lock: threading.Lock = field(default_factory=threading.Lock)
    residue_pending: bool = False


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None: another database, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def sqlite_files(url: str) -> list[Path]:
    """The database file of a SQLite URL and its ``-wal`` and ``-shm`` (whether they exist or
    not); empty for other databases."""
    path = sqlite_path(url)
    if path is None:
        return []
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            # 0600 before SQLite opens it: SQLite gives -wal and -shm the database file's mode.
            datadir.create_file(path)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions; BEGIN IMMEDIATE takes the write
            # lock up front so two writers queue instead of failing to upgrade a read lock.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # The default page cache (2 MB) thrashes on random-UUID index inserts once tables
            # hold millions of rows; 32 MB per connection keeps the hot index pages in memory.
            cur.execute("PRAGMA cache_size=-32768")
            # Overwrite deleted content with zeros, so an erased customer's wrapped key and
            # ciphertexts do not linger in free pages of the file (crypto-shredding, vault.dsr).
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            cur.close()

        # SQLite has one writer. Its busy handler polls with sleeps of up to 100 ms, which
        # under concurrent requests wastes most of the time; so writers of this process queue
        # on a lock first (handed over at once), and only other processes meet busy_timeout.
        state = _SQLiteFile()
        write_lock = state.write_lock
        engine.update_execution_options(**{_SQLITE_FILE: state})

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get("sqlite_deferred", False):
                conn.exec_driver_sql("BEGIN")
                return
            write_lock.acquire()
            conn.info["vault_write_lock"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                conn.info.pop("vault_write_lock", None)
                write_lock.release()
                raise

        def _release(conn: Any) -> None:
            if conn.info.pop("vault_write_lock", False):
                write_lock.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def driver_execute(conn: Any, sql: str, params: tuple | list = ()) -> Any:
    """Run driver SQL on the transaction's own DB-API connection and return the cursor.

    For the few statements on every request (token's client, the gated read, its audit event):
    SQLAlchemy's result machinery costs more than SQLite takes to answer them."""
    cur = conn.connection.driver_connection.cursor()
    cur.execute(sql, params)
    return cur


class DriverSQL:
    """One hot statement as driver SQL for both databases: written with ``?`` placeholders
    (SQLite's; ``?j`` for JSON text), ``%s`` for psycopg; ``pg_suffix`` is appended on
    PostgreSQL only (``FOR UPDATE``). With :func:`db_uuid`, :func:`db_time` and
    :func:`py_time` the values are stored exactly as SQLAlchemy's column types store them, so
    either path reads what the other wrote."""

    __slots__ = ("pg", "sqlite")

    def __init__(self, sql: str, pg_suffix: str = ""):
        # ``?j``: a JSON value given as its text (PostgreSQL casts it to ``json``)
        self.sqlite = sql.replace("?j", "?")
        self.pg = sql.replace("?j", "%s::json").replace("?", "%s") + pg_suffix

    def run(self, conn: Any, params: tuple) -> Any:
        """Execute on ``conn`` (the session's SQLAlchemy connection) and return the cursor."""
        return driver_execute(
            conn, self.sqlite if conn.dialect.name == "sqlite" else self.pg, params
        )


def db_uuid(value: Any, sqlite: bool) -> Any:
    """A UUID as SQLAlchemy's ``Uuid`` stores it (SQLite: 32 hex digits)."""
    if value is None or not sqlite:
        return value
    return value.hex


def db_time(value: datetime | None, sqlite: bool) -> Any:
    """An aware datetime as :class:`UTCDateTime` stores it (SQLite: UTC text with microseconds,
    SQLAlchemy's format)."""
    if value is None:
        return None
    if not sqlite:
        return value
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def py_time(value: Any) -> datetime | None:
    """What :class:`UTCDateTime` reads back from a driver value: an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def try_advisory_lock(session: Session, key: int) -> bool:
    """Take the transaction-scoped advisory lock ``key`` if no one holds it (PostgreSQL; held
    until commit or rollback). False: another transaction holds it, skip the work. SQLite: always
    True, its write transaction already serialises."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(select(func.pg_try_advisory_xact_lock(key))).scalar())


def reader(engine: Engine) -> Engine:
    """The same pool, but SQLite transactions begin deferred (no write lock): for sessions that
    only read, such as streaming exports and test inspection."""
    return engine.execution_options(sqlite_deferred=True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back when it raises (anything).

    An audited refusal (:meth:`vault.errors.VaultError.audited`) is rolled back like any error,
    then its audit row is written and committed in a transaction of its own, and it is raised
    on: the refused change is gone, the evidence of the refusal stays."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
            _run_after_commit(session)
            _finish_pending_scrub(engine)
        except VaultError as exc:
            session.info.pop(_AFTER_COMMIT, None)
            session.rollback()
            if exc.audit is not None:
                exc.audit(session)
                session.commit()
            raise
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            session.rollback()
            raise


def transaction_group(
    engine: Engine, calls: Sequence[Callable[[Session], Any]], *, retries: int = 3
) -> list[tuple[bool, Any]]:
    """Group commit: run ``calls`` (each ``fn(session)``, as in :func:`transaction`) in one
    transaction with one commit, and return ``(True, result)`` or ``(False, exception)`` per
    call, in order. Nothing is returned before the commit, so a caller answers only what is
    durable, and a group is never partly committed. If a call raises, the group is rolled back
    and runs again without it, and that call runs alone in its own :func:`transaction` (its
    refusal audited as there): one request's failure never drops or changes another's work,
    and the others still share one commit. After ``retries`` such failures, or if the commit
    itself fails, every remaining call runs alone."""
    outcomes: list[tuple[bool, Any] | None] = [None] * len(calls)
    grouped = list(range(len(calls)))
    alone: list[int] = []
    while len(grouped) > 1 and retries >= 0:
        failing: int | None = None
        with Session(engine, expire_on_commit=False) as session:
            try:
                results = []
                for i in grouped:
                    failing = i
                    results.append(calls[i](session))
                failing = None
                session.commit()
            except BaseException as exc:
                session.info.pop(_AFTER_COMMIT, None)
                session.rollback()
                if not isinstance(exc, Exception):
                    raise
            else:
                _run_after_commit(session)
                _finish_pending_scrub(engine)
                for i, r in zip(grouped, results, strict=True):
                    outcomes[i] = (True, r)
                grouped = []
                break
        if failing is None:  # the commit failed: no call to blame
            break
        grouped.remove(failing)
        alone.append(failing)
        retries -= 1
    for i in sorted(alone + grouped):
        try:
            with transaction(engine) as session:
                outcomes[i] = (True, calls[i](session))
        except Exception as exc:
            outcomes[i] = (False, exc)
    return outcomes  # type: ignore[return-value]


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn()`` once ``session``'s transaction has committed (in :func:`transaction`, before
    the answer is sent); not at all if it rolls back. For work that must follow the durable
    change, such as removing an erased customer's bytes from the SQLite WAL. An error raised by
    ``fn`` reaches the caller: the change is committed, but the request reports the failure."""
    session.info.setdefault(_AFTER_COMMIT, []).append(fn)


_AFTER_COMMIT = "vault_after_commit"


def _run_after_commit(session: Session) -> None:
    for fn in session.info.pop(_AFTER_COMMIT, ()):
        fn()


# --- removing deleted bytes from the disk (erasure) -------------------------------------------


def scrub_deleted(
    engine: Engine, *, vacuum: Sequence[str] = (), patience: float | None = None
) -> bool:
    """After a committed erasure: make the bytes it deleted leave the database's files.

    SQLite: ``secure_delete`` already zeroed them in the pages the erasure wrote, but the WAL
    still holds the older frames that contain them. Measured on SQLite 3.40 (20,000 rows, then a
    DELETE): after ``wal_checkpoint(PASSIVE)``, ``FULL`` and ``RESTART`` the deleted bytes are
    still in ``-wal`` (those modes copy the frames into the database and at most make the next
    writer start over, but leave the old frames in the file); only ``TRUNCATE`` leaves a WAL of
    zero bytes. TRUNCATE needs every reader to have left the WAL (measured: any open read
    transaction on another connection makes it busy), so it is retried for up to ``patience``
    seconds (default :data:`CHECKPOINT_PATIENCE`); False if a reader still held it: the deleted
    bytes stay in ``-wal`` until the next commit of this engine finishes the checkpoint
    (:func:`transaction`).

    PostgreSQL: ``VACUUM`` the ``vacuum`` tables (outside a transaction, so on an autocommit
    connection), so dead tuples of the erased rows are removed now rather than whenever
    autovacuum comes; best-effort, a failure is logged. Returns True."""
    state = _sqlite_file(engine)
    if state is not None:
        wait = CHECKPOINT_PATIENCE if patience is None else patience
        return _checkpoint(engine, state, patience=wait)
    if vacuum and engine.dialect.name == "postgresql":
        _vacuum(engine, vacuum)
    return True


def residue_pending(engine: Engine) -> bool:
    """SQLite: an erasure's checkpoint did not finish, deleted bytes may still be in ``-wal``."""
    state = _sqlite_file(engine)
    return state is not None and state.residue_pending


def _sqlite_file(engine: Engine) -> _SQLiteFile | None:
    return engine.get_execution_options().get(_SQLITE_FILE)


def _checkpoint(engine: Engine, state: _SQLiteFile, *, patience: float) -> bool:
    deadline = time.monotonic() + patience
    # Writers of this process queue on the write lock instead of making the checkpoint busy.
    locked = (
        state.write_lock.acquire(timeout=patience)
        if patience > 0
        else state.write_lock.acquire(blocking=False)
    )
    if not locked:
        state.residue_pending = True
        return False
    try:
        # connect() begins no transaction (the begin hook runs on the first execute, which
        # never comes): the PRAGMAs run on the bare driver connection, in autocommit.
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            try:
                while True:
                    wait = max(0.0, min(CHECKPOINT_TRY, deadline - time.monotonic()))
                    raw.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                    try:
                        busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    except sqlite3.OperationalError:  # locked by another checkpointer
                        busy = 1
                    if not busy:
                        state.residue_pending = False
                        return True
                    if time.monotonic() >= deadline:
                        state.residue_pending = True
                        return False
            finally:
                raw.execute("PRAGMA busy_timeout=30000")
    finally:
        state.write_lock.release()


def _finish_pending_scrub(engine: Engine) -> None:
    """After any commit: if an erasure left deleted bytes in the WAL, try the checkpoint once
    more without waiting (the sealer commits after every erasure, so this comes soon)."""
    state = _sqlite_file(engine)
    if state is None or not state.residue_pending:
        return
    try:
        if _checkpoint(engine, state, patience=0):
            log.info("the checkpoint an erasure left unfinished has completed")
    except Exception as exc:  # the caller's change is committed; never fail it for this
        log.warning("retrying the erasure checkpoint failed: %s", type(exc).__name__)


def _vacuum(engine: Engine, tables: Sequence[str]) -> None:
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM " + ", ".join(quote(t) for t in tables))
    except Exception as exc:
        log.warning(
            "VACUUM after an erasure failed (%s); autovacuum removes the dead tuples later",
            type(exc).__name__,
        )


def get_session(request: Request) -> Iterator[Session]:
    """The request's one transaction: commit on success, roll back on any error."""
    with transaction(request.app.state.runtime.engine) as session:
        yield session


# scope="function": the commit runs when the route returns, before the response is sent, so
# nothing is answered whose evidence is not committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


class SchemaNotCurrent(Exception):
    """The database's schema is not the one this vault's code needs (and was not migrated)."""


@cache
def head_revision() -> str:
    """The newest migration's revision (read once from the migrations directory)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty (never migrated) database."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            return None


def ensure_schema(engine: Engine, url: str, *, migrate: bool) -> None:
    """Bring the schema to the code's revision when ``migrate`` (the embedded default, as
    ``vault serve`` does), else refuse with :class:`SchemaNotCurrent`: a CLI command on an
    unmigrated or older database says so in one line instead of failing on a missing table."""
    current = schema_revision(engine)
    if current == head_revision():
        return
    if migrate:
        upgrade(url)
        return
    raise SchemaNotCurrent(
        f"the database is at schema revision {current or 'none (empty)'}, this vault needs "
        f"{head_revision()}: run 'vault db upgrade' first"
    )


DOMAIN_MODEL_MODULES = (
    "vault.auth.models",
    "vault.customers.models",
    "vault.consent.models",
    "vault.audit.models",
    "vault.dsr.models",
    "vault.events.models",
    "vault.selfservice.models",
    "vault.mail.models",
    "vault.staff.models",
    "vault.preferences.models",
)


def load_models() -> MetaData:
    """Import every domain's tables so ``metadata`` is complete (Alembic, tests)."""
    import importlib

    for module in DOMAIN_MODEL_MODULES:
        importlib.import_module(module)
    return metadata
