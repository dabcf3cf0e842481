"""Tamper-evident audit log.

Design
======

**Writing is one INSERT.** :func:`record` (and :func:`record_many` for bulk exports: one
``executemany`` on SQLite, ``COPY`` on PostgreSQL) inserts into ``audit_event`` inside the
caller's transaction: the event commits with the change or release it describes, or not at all,
and the caller answers only after the commit. Writers take no lock beyond their own row; the row
gets its id from the database and has no ``seq`` and no ``hash`` yet.

**Chaining is done by one sealer at a time, after commit.** :func:`seal` takes a short exclusive
lock (``pg_advisory_xact_lock`` on PostgreSQL; on SQLite every write transaction already is
``BEGIN IMMEDIATE``), reads the chain head, reads *committed* unchained rows in id order, and gives
each the next gapless ``seq`` and ``hash = SHA-256(previous hash || canonical body)`` (see
:mod:`vault.audit.chain`). A transaction that commits late (a smaller id committed after a larger
one was chained) is simply chained in a later batch: the chain order is ``seq``, the commit order
as the sealer saw it, never the id order. So many server processes can write at once and no
request ever waits on the chain lock; only sealers do, for as long as hashing one batch takes.
Every ``checkpoint_interval`` (and on demand) the sealer signs the head ``(seq, hash, signed_at)``
with the Ed25519 audit key (public key in ``/.well-known/jwks.json``) into ``audit_checkpoint``.

The sealer runs in a background thread of every server process
(:func:`vault.audit.sealer.start_sealer`, every ``VAULT_AUDIT_SEAL_INTERVAL`` seconds, 0.5 s by
default), on demand before every verification, and as ``vault audit seal``.

**What protects an event when.**

* Before it is chained (normally under a second): the database triggers only. They refuse UPDATE
  (except the sealer's one-time setting of ``seq`` and ``hash``) and DELETE. A DBA who disables
  the triggers in that window can change or drop the row unnoticed. Keep the window short.
* Chained, before the next checkpoint: the hash chain. Any naive change, deletion, reordering or
  insertion makes the recomputed hash differ from the stored one at that ``seq``. A DBA who also
  rewrites every later hash can only do so up to the head: the next checkpoint exposes it.
* Covered by a checkpoint: the Ed25519 signature. Forging requires the audit key, which lives
  with the key provider, not in the database. Cutting off the tail after a checkpoint is detected
  because the checkpoint names a ``seq`` that no longer exists. Cutting off events after the last
  checkpoint cannot be detected by any chain; hence frequent checkpoints.

**Verification** (:func:`verify`) streams ``(seq, hash, body)`` ordered by ``seq``, recomputes
every hash and checks every checkpoint signature and hash, and reports the first ``seq`` that is
wrong: a changed or reordered row (its own seq), a missing or duplicated seq, a checkpoint whose
signature is wrong (the checkpoint's seq), a chain whose hashes were rewritten consistently (the
first seq after the last checkpoint that still matched), a cut tail (the first missing seq).

**Retention** (:func:`purge`, ``vault audit purge``): events older than
``VAULT_AUDIT_RETENTION_DAYS`` are deleted only up to a signed checkpoint ``A``. The purge writes
a permit row into ``audit_purge`` (the delete trigger allows deleting ``seq <= up_to_seq`` and
nothing else), deletes, and records a chained ``audit.purged`` event naming ``A``. Verification
then starts from checkpoint ``A``: its signature vouches for the hash the remaining chain
continues from, and the ``audit.purged`` event inside the verified chain must name ``A``.

**No PII.** Events carry ids, purpose and attribute *names*, outcomes and machine-readable
reasons. Every string field is checked against a strict pattern; ``details`` values that look
like contact data (an ``@``, a run of 8 or more digits outside a UUID, an integer of 10 or more
digits) are refused with :class:`AuditPiiRefused`. This is a defensive net, not a licence to pass
arbitrary data.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Connection, Engine, and_, func, insert, select, text
from sqlmodel import Session

from vault.audit import chain
from vault.audit.models import AuditCheckpoint, AuditEvent, AuditPurge, VerifyResult
from vault.crypto import KeyMaterial
from vault.db import driver_execute, reader, utcnow
from vault.errors import InvalidRequest, VaultError

OUTCOMES = frozenset({"success", "allowed", "denied", "error"})
MAX_DETAILS_BYTES = 2048

_ACTOR = re.compile(r"([a-z][a-z_]{1,15})(?::([A-Za-z0-9._:\-]{1,200}))?")
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z][a-z0-9_]{0,30}){1,3}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_REASON = re.compile(r"[a-z][a-z0-9_.:\-]{0,127}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_DIGIT_RUN = re.compile(r"\d{8,}")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)

# Inserts bypass the ORM and SQLAlchemy's bind processing (hot path: one row per release,
# 100k+ rows per bulk export); _db_values converts exactly as UTCDateTime and Uuid would.
_INSERT_COLUMNS = (
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "outcome",
    "customer_id",
    "purpose",
    "attributes",
    "reason",
    "request_id",
    "details",
)
_INSERT_SQLITE = (
    f"INSERT INTO audit_event ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_INSERT_PG = (
    f"INSERT INTO audit_event ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_INSERT_COLUMNS))})"
)
_COPY_PG = f"COPY audit_event ({', '.join(_INSERT_COLUMNS)}) FROM STDIN"
_RECORD_KEYS = frozenset(
    {
        "actor",
        "action",
        "outcome",
        "customer_id",
        "purpose",
        "attributes",
        "reason",
        "request_id",
        "details",
        "now",
    }
)


class InvalidAuditEvent(VaultError):
    code = "invalid_audit_event"
    status = 500  # a programming error in the caller, never the client's fault
    default_detail = "An audit event could not be recorded."


class AuditPiiRefused(InvalidAuditEvent):
    code = "audit_pii_refused"
    default_detail = "An audit event carried a value that looks like personal data."


@lru_cache(maxsize=4096)
def _split_actor(actor: str) -> tuple[str, str | None]:
    m = _ACTOR.fullmatch(actor) if isinstance(actor, str) else None
    if m is None:
        raise InvalidAuditEvent("actor must look like 'client:<id>', 'customer:<uuid>' or 'cli'.")
    return m.group(1), m.group(2)


@lru_cache(maxsize=1024)
def _check_action(action: str) -> str:
    if not isinstance(action, str) or len(action) > 64 or not _ACTION.fullmatch(action):
        raise InvalidAuditEvent("action must be a dotted lower-case name such as 'data.read'.")
    return action


@lru_cache(maxsize=1024)
def _check_name(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidAuditEvent(f"{what} must be a snake_case name.")
    return value


@lru_cache(maxsize=1024)
def _check_attributes(names: tuple[str, ...]) -> str:
    for n in names:
        _check_name(n, "attribute")
    joined = ",".join(names)
    if len(joined) > 4000:
        raise InvalidAuditEvent("Too many attribute names for one audit event.")
    return joined


@lru_cache(maxsize=1024)
def _check_reason(reason: str | None) -> str | None:
    if reason is None or reason == "":
        return None
    if not isinstance(reason, str) or not _REASON.fullmatch(reason):
        raise InvalidAuditEvent("reason must be a machine-readable code such as 'no_consent'.")
    return reason


def _check_request_id(request_id: str | None) -> str | None:
    if request_id is None or request_id == "":
        return None
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise InvalidAuditEvent("request_id must be a short token.")
    return request_id


def _looks_like_pii(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return False
    if isinstance(value, int):
        return abs(value) >= 10**9
    if isinstance(value, str):
        if "@" in value:
            return True
        return bool(_DIGIT_RUN.search(_UUID.sub("", value)))
    return True  # other types are not allowed at all


def _check_details_value(value: Any, depth: int) -> None:
    if isinstance(value, Mapping):
        if depth > 1:
            raise InvalidAuditEvent("details may nest one level at most.")
        for k, v in value.items():
            if not isinstance(k, str) or not _NAME.fullmatch(k):
                raise InvalidAuditEvent("details keys must be snake_case names.")
            _check_details_value(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            if isinstance(v, Mapping | list | tuple):
                raise InvalidAuditEvent("details lists hold plain values only.")
            _check_details_value(v, depth)
    elif _looks_like_pii(value):
        raise AuditPiiRefused(
            "details refused: a value looks like contact data or is not a plain value."
        )


def canonical_details(details: Mapping[str, Any] | None) -> str | None:
    """Validate ``details`` and return its canonical JSON (sorted keys, compact), or None."""
    if not details:
        return None
    if not isinstance(details, Mapping):
        raise InvalidAuditEvent("details must be a JSON object.")
    _check_details_value(details, 0)
    text = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
    if len(text) > MAX_DETAILS_BYTES:
        raise InvalidAuditEvent("details are too large for an audit event.")
    return text


def _customer_id(value: UUID | str | None) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidAuditEvent("customer_id must be a UUID.") from None


def _row(
    *,
    actor: str,
    action: str,
    outcome: str = "success",
    customer_id: UUID | str | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    request_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    actor_type, actor_id = _split_actor(actor)
    if outcome not in OUTCOMES:
        raise InvalidAuditEvent(f"outcome must be one of {', '.join(sorted(OUTCOMES))}.")
    if isinstance(attributes, str):
        attributes = (attributes,)
    return {
        "occurred_at": now or utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": _check_action(action),
        "outcome": outcome,
        "customer_id": _customer_id(customer_id),
        "purpose": _check_name(purpose, "purpose"),
        "attributes": _check_attributes(tuple(attributes)),
        "reason": _check_reason(reason),
        "request_id": _check_request_id(request_id),
        "details": canonical_details(details),
    }


def _sqlite_time(value: datetime) -> str:
    # The format SQLAlchemy's SQLite DATETIME writes (and parses back).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _db_values(row: dict[str, Any], sqlite: bool) -> tuple:
    values = tuple(row[c] for c in _INSERT_COLUMNS)
    if not sqlite:
        return values
    cid = row["customer_id"]
    return (
        _sqlite_time(row["occurred_at"]),
        *values[1:5],
        cid.hex if cid is not None else None,
        *values[6:],
    )


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    outcome: str = "success",
    customer_id: UUID | None = None,
    purpose: str | None = None,
    attributes: Sequence[str] = (),
    reason: str | None = None,
    request_id: str | None = None,
    details: dict | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit event in the caller's transaction (one INSERT; the caller commits).

    Raises :class:`InvalidAuditEvent` (or :class:`AuditPiiRefused`) for malformed input: the
    caller's transaction must then fail, since an unaudited release is not allowed."""
    row = _row(
        actor=actor,
        action=action,
        outcome=outcome,
        customer_id=customer_id,
        purpose=purpose,
        attributes=attributes,
        reason=reason,
        request_id=request_id,
        details=details,
        now=now,
    )
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    driver_execute(conn, _INSERT_SQLITE if sqlite else _INSERT_PG, _db_values(row, sqlite))


def record_many(*, session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Write many audit events at once (bulk exports): ``executemany`` on SQLite, ``COPY`` on
    PostgreSQL, in the caller's transaction. Each mapping takes the keyword arguments of
    :func:`record` except ``session``; ``now`` defaults to one shared now.

    Events that differ only in ``customer_id`` are validated once."""
    if not events:
        return
    now = utcnow()
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    shapes: dict[tuple, tuple] = {}
    rows: list[tuple] = []
    append = rows.append
    for event in events:
        if not _RECORD_KEYS.issuperset(event):
            raise InvalidAuditEvent("An audit event has unknown keys.")
        if event.get("details"):
            row = _row(**{**event, "now": event.get("now") or now})
            append(_db_values(row, sqlite))
            continue
        attrs = event.get("attributes", ())
        key = (
            event.get("actor"),
            event.get("action"),
            event.get("outcome", "success"),
            event.get("purpose"),
            attrs if isinstance(attrs, str) else tuple(attrs),
            event.get("reason"),
            event.get("request_id"),
            event.get("now") or now,
        )
        shape = shapes.get(key)
        if shape is None:
            fields = {k: v for k, v in event.items() if k != "customer_id"}
            fields["now"] = key[-1]
            shape = shapes[key] = _db_values(_row(**fields), sqlite)
        cid = event.get("customer_id")
        if cid is not None:
            cid = _customer_id(cid)
            if sqlite:
                cid = cid.hex  # type: ignore[union-attr]
        append((*shape[:5], cid, *shape[6:]))
    if sqlite:
        conn.exec_driver_sql(_INSERT_SQLITE, rows)
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(_COPY_PG) as copy:
        for r in rows:
            copy.write_row(r)


def actor_text(actor_type: str, actor_id: str | None) -> str:
    return f"{actor_type}:{actor_id}" if actor_id else actor_type


# --- sealing ---------------------------------------------------------------------------------

# pg_advisory_xact_lock key of the chain head ("audit" in ASCII).
SEAL_LOCK_KEY = 0x6175646974
SEAL_BATCH = 5000
PURGED_ACTION = "audit.purged"


@dataclass(frozen=True)
class SealResult:
    sealed: int
    head_seq: int
    checkpoint_seq: int | None  # the checkpoint written by this call, if any


def _head(session: Session) -> tuple[int, bytes]:
    row = session.execute(
        text("SELECT seq, hash FROM audit_event WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
    ).first()
    cp = session.execute(
        text("SELECT seq, hash FROM audit_checkpoint ORDER BY seq DESC LIMIT 1")
    ).first()
    best = max((r for r in (row, cp) if r is not None), key=lambda r: r[0], default=None)
    if best is None:
        return 0, chain.GENESIS
    return int(best[0]), bytes(best[1])


def seal(
    *,
    session: Session,
    keys: KeyMaterial,
    now: datetime | None = None,
    batch_size: int = SEAL_BATCH,
    checkpoint: bool | None = None,
    checkpoint_interval: float = 10.0,
) -> SealResult:
    """Chain up to ``batch_size`` committed unchained events and maybe sign a checkpoint.

    Takes the chain lock for the rest of the caller's transaction; the caller commits at once.
    ``checkpoint``: True signs the head now, False never, None when the last checkpoint is older
    than ``checkpoint_interval`` seconds."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK_KEY})
    head_seq, head_hash = _head(session)
    rows = session.execute(
        text(
            # body_sql is a constant expression over column names, no input.
            f"SELECT id, {chain.body_sql(dialect, with_seq=False)} FROM audit_event "  # noqa: S608
            "WHERE seq IS NULL ORDER BY id LIMIT :n"
        ),
        {"n": batch_size},
    ).all()
    updates = []
    link = chain.link
    for id_, body in rows:
        head_seq += 1
        head_hash = link(head_hash, head_seq, body)
        updates.append({"i": id_, "s": head_seq, "h": head_hash})
    if updates and dialect == "postgresql":
        # One statement for the whole batch instead of one round trip per row.
        session.execute(
            text(
                "UPDATE audit_event AS e SET seq = v.s, hash = v.h FROM "
                "(SELECT unnest(CAST(:i AS bigint[])) AS i, unnest(CAST(:s AS bigint[])) AS s, "
                "unnest(CAST(:h AS bytea[])) AS h) AS v WHERE e.id = v.i"
            ),
            {
                "i": [u["i"] for u in updates],
                "s": [u["s"] for u in updates],
                "h": [u["h"] for u in updates],
            },
        )
    elif updates:
        session.execute(text("UPDATE audit_event SET seq = :s, hash = :h WHERE id = :i"), updates)

    written = None
    if checkpoint is not False and head_seq > 0:
        last = session.execute(
            select(AuditCheckpoint.seq, AuditCheckpoint.signed_at)
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        ).first()
        due = (
            checkpoint is True
            or last is None
            or (now - last.signed_at).total_seconds() >= checkpoint_interval
        )
        if due and (last is None or last.seq < head_seq):
            session.execute(
                insert(AuditCheckpoint.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "seq": head_seq,
                        "hash": head_hash,
                        "signed_at": now,
                        "kid": keys.audit_kid,
                        "signature": chain.sign_checkpoint(
                            keys.audit_key, head_seq, head_hash, now
                        ),
                    }
                ],
            )
            written = head_seq
    return SealResult(sealed=len(updates), head_seq=head_seq, checkpoint_seq=written)


def needs_sealing(connection: Connection) -> bool:
    """Cheap check: unchained events, or a chained head no checkpoint covers yet."""
    row = connection.execute(
        text(
            "SELECT (SELECT id FROM audit_event WHERE seq IS NULL LIMIT 1),"
            " (SELECT max(seq) FROM audit_event),"
            " (SELECT max(seq) FROM audit_checkpoint)"
        )
    ).one()
    return row[0] is not None or (row[1] or 0) > (row[2] or 0)


# --- verification ----------------------------------------------------------------------------

VERIFY_BATCH = 20_000


def public_key(keys: KeyMaterial) -> ed25519.Ed25519PublicKey:
    return keys.audit_key.public_key()


def public_jwk(keys: KeyMaterial) -> dict[str, str]:
    """The checkpoint key as an RFC 8037 OKP JWK, for ``/.well-known/jwks.json``."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key(keys).public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": chain.b64url(raw),
        "kid": keys.audit_kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def _checkpoints(connection: Connection, start: int) -> Iterator[tuple]:
    last = start - 1
    while True:
        rows = connection.execute(
            text(
                "SELECT seq, hash, signed_at, kid, signature FROM audit_checkpoint "
                "WHERE seq > :last ORDER BY seq LIMIT 1000"
            ),
            {"last": last},
        ).all()
        yield from rows
        if len(rows) < 1000:
            return
        last = rows[-1][0]


def _signed_at(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _checkpoint_ok(keys: KeyMaterial, cp: tuple) -> bool:
    seq, chain_hash, signed_at, kid, signature = cp
    if kid != keys.audit_kid:
        return False
    return chain.checkpoint_valid(
        public_key(keys), int(seq), bytes(chain_hash), _signed_at(signed_at), bytes(signature)
    )


def _authorised_purges(connection: Connection) -> set[int]:
    """Anchors named by chained ``audit.purged`` events."""
    out: set[int] = set()
    for (details,) in connection.execute(
        text("SELECT details FROM audit_event WHERE action = :a AND seq IS NOT NULL"),
        {"a": PURGED_ACTION},
    ):
        try:
            out.add(int(orjson.loads(details)["up_to_seq"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _stream(connection: Connection, sql: str, batch: int = VERIFY_BATCH) -> Iterator[list]:
    dbapi = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        # binary: bytea and int8 arrive as bytes and int without text parsing
        cursor = dbapi.cursor(name="audit_verify", binary=True)  # type: ignore[union-attr, call-arg]
        cursor.itersize = batch
    else:
        cursor = dbapi.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        cursor.close()


def verify(*, connection: Connection, keys: KeyMaterial) -> VerifyResult:
    """Recompute the whole chain and check every checkpoint. Read-only; the caller gives a
    connection whose transaction sees one snapshot (see :func:`verify_engine`)."""
    dialect = connection.dialect.name
    first = connection.execute(text("SELECT min(seq) FROM audit_event")).scalar()
    if first is None:
        any_cp = connection.execute(text("SELECT max(seq) FROM audit_checkpoint")).scalar()
        if any_cp is None:
            return VerifyResult(ok=True, checked=0, first_invalid_seq=None)
        return VerifyResult(ok=False, checked=0, first_invalid_seq=1)
    first = int(first)

    def fail(seq: int, checked: int) -> VerifyResult:
        return VerifyResult(ok=False, checked=checked, first_invalid_seq=seq)

    if first == 1:
        prev, good_cp = chain.GENESIS, 0
    else:
        # A purged log must start right after a checkpoint that a chained audit.purged names.
        anchor = connection.execute(
            text(
                "SELECT seq, hash, signed_at, kid, signature FROM audit_checkpoint "
                "WHERE seq < :m ORDER BY seq DESC LIMIT 1"
            ),
            {"m": first},
        ).first()
        if anchor is None:
            return fail(1, 0)
        if int(anchor[0]) != first - 1 or not _checkpoint_ok(keys, tuple(anchor)):
            return fail(int(anchor[0]) + 1 if int(anchor[0]) < first - 1 else first, 0)
        prev, good_cp = bytes(anchor[1]), first - 1

    checkpoints = _checkpoints(connection, first)
    cp = next(checkpoints, None)
    cp_seq = int(cp[0]) if cp else -1
    expected = first
    sha256 = hashlib.sha256
    sql = (
        f"SELECT seq, hash, {chain.body_bytes_sql(dialect)} "  # noqa: S608
        "FROM audit_event WHERE seq IS NOT NULL ORDER BY seq"
    )
    # The hot loop: raw DB-API rows (a server-side cursor on PostgreSQL), one SHA-256 each.
    for rows in _stream(connection, sql):
        for seq, stored, body in rows:
            if seq != expected:
                return fail(expected, expected - first)
            prev = sha256(prev + body).digest()
            if prev != stored:
                return fail(seq, expected - first)
            if seq == cp_seq:
                if not _checkpoint_ok(keys, tuple(cp)):  # type: ignore[arg-type]
                    return fail(seq, expected - first)
                if bytes(cp[1]) != prev:  # type: ignore[index]
                    # Internally consistent but not what was signed: the hashes were rewritten
                    # somewhere after the last checkpoint that still matched.
                    return fail(good_cp + 1, expected - first)
                good_cp = seq
                cp = next(checkpoints, None)
                cp_seq = int(cp[0]) if cp else -1
            expected += 1
    checked = expected - first
    if cp is not None:  # a checkpoint names events that are gone: the tail was cut
        return fail(expected, checked)
    if first > 1 and first - 1 not in _authorised_purges(connection):
        return fail(
            max((a for a in _authorised_purges(connection) if a < first - 1), default=0) + 1,
            checked,
        )
    return VerifyResult(ok=True, checked=checked, first_invalid_seq=None)


def verify_engine(*, engine: Engine, keys: KeyMaterial) -> VerifyResult:
    """:func:`verify` in one read-only snapshot (REPEATABLE READ on PostgreSQL, one deferred
    transaction on SQLite), so checkpoints and events are read as of the same instant."""
    if engine.dialect.name == "postgresql":
        conn_engine = engine.execution_options(isolation_level="REPEATABLE READ")
    else:
        conn_engine = reader(engine)
    with conn_engine.connect() as conn, conn.begin():
        return verify(connection=conn, keys=keys)


# --- retention -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeResult:
    up_to_seq: int | None
    deleted: int


def purge(
    *,
    session: Session,
    now: datetime | None = None,
    retention_days: int,
    actor: str = "cli",
) -> PurgeResult:
    """Delete chained events older than ``retention_days``, up to the newest signed checkpoint
    that precedes every younger event; that checkpoint anchors what remains. Seal with a
    checkpoint first (``vault audit purge`` does)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    young = session.execute(
        select(func.min(AuditEvent.seq)).where(
            AuditEvent.seq.is_not(None), AuditEvent.occurred_at >= cutoff
        )
    ).scalar()
    if young is None:
        young = (session.execute(select(func.max(AuditEvent.seq))).scalar() or 0) + 1
    anchor = session.execute(
        select(func.max(AuditCheckpoint.seq)).where(AuditCheckpoint.seq < young)
    ).scalar()
    done = session.execute(select(func.max(AuditPurge.up_to_seq))).scalar() or 0
    if anchor is None or anchor <= done:
        return PurgeResult(up_to_seq=None, deleted=0)
    count = session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.seq <= anchor)
    ).scalar_one()
    # The permit first: the delete triggers allow exactly seq <= up_to_seq.
    session.execute(
        insert(AuditPurge.__table__),  # type: ignore[attr-defined]
        [{"up_to_seq": anchor, "purged_at": now, "deleted": count}],
    )
    session.execute(text("DELETE FROM audit_event WHERE seq <= :a"), {"a": anchor})
    session.execute(text("DELETE FROM audit_checkpoint WHERE seq < :a"), {"a": anchor})
    record(
        session=session,
        actor=actor,
        action=PURGED_ACTION,
        details={"up_to_seq": anchor, "deleted": count, "retention_days": retention_days},
        now=now,
    )
    return PurgeResult(up_to_seq=anchor, deleted=count)


# --- reading ---------------------------------------------------------------------------------

PAGE_MAX = 1000
EXPORT_BATCH = 5000


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"
    default_detail = "The cursor is not valid; start again without one."


@dataclass(frozen=True)
class EventFilter:
    customer_id: UUID | None = None
    actor: str | None = None
    purpose: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        t = AuditEvent
        out: list[Any] = []
        if self.customer_id is not None:
            out.append(t.customer_id == self.customer_id)
        if self.actor:
            actor_type, _, actor_id = self.actor.partition(":")
            out.append(t.actor_type == actor_type)
            if actor_id:
                out.append(t.actor_id == actor_id)
        if self.purpose:
            out.append(t.purpose == self.purpose)
        if self.action:
            if self.action.endswith(".*"):
                out.append(t.action.startswith(self.action[:-1], autoescape=True))
            else:
                out.append(t.action == self.action)
        if self.outcome:
            out.append(t.outcome == self.outcome)
        if self.since is not None:
            out.append(t.occurred_at >= _aware(self.since))
        if self.until is not None:
            out.append(t.occurred_at < _aware(self.until))
        return out

    def used(self) -> list[str]:
        return [k for k, v in self.__dict__.items() if v is not None and v != ""]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.occurred_at,
    AuditEvent.actor_type,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.outcome,
    AuditEvent.customer_id,
    AuditEvent.purpose,
    AuditEvent.attributes,
    AuditEvent.reason,
    AuditEvent.request_id,
    AuditEvent.details,
)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"a1:{last_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        if tag != "a1" or not value.isdigit():
            raise ValueError
        return int(value)
    except ValueError:
        raise InvalidCursor() from None


def to_public(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "occurred_at": row.occurred_at,
        "actor": actor_text(row.actor_type, row.actor_id),
        "action": row.action,
        "outcome": row.outcome,
        "customer_id": row.customer_id,
        "purpose": row.purpose,
        "attributes": row.attributes.split(",") if row.attributes else [],
        "reason": row.reason,
        "request_id": row.request_id,
        "details": orjson.loads(row.details) if row.details else None,
    }


def _select(flt: EventFilter, after_id: int, limit: int):
    return (
        select(*_COLUMNS)
        .where(and_(AuditEvent.id > after_id, *flt.clauses()))
        .order_by(AuditEvent.id)
        .limit(limit)
    )


def list_events(
    *, session: Session, filters: EventFilter, cursor: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """One page in insertion order, and the cursor of the next page (None at the end)."""
    limit = max(1, min(limit, PAGE_MAX))
    rows = session.execute(_select(filters, decode_cursor(cursor), limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [to_public(r) for r in rows], (encode_cursor(rows[-1].id) if more else None)


def iter_events(
    *, engine: Engine, filters: EventFilter, batch_size: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
    """Every matching event, in keyset batches, each batch in its own short read transaction,
    so an export of millions of events holds neither memory nor locks."""
    after = 0
    read = reader(engine)
    while True:
        with Session(read) as s:
            rows = s.execute(_select(filters, after, batch_size)).all()
        for r in rows:
            yield to_public(r)
        if len(rows) < batch_size:
            return
        after = rows[-1].id
