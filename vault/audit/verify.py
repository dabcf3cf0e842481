"""Verifying the audit log: recompute the chain and check every signed checkpoint.

**Verification** (:func:`verify`) streams ``(seq, hash, body)`` ordered by ``seq``, recomputes
every hash and checks every checkpoint signature and hash, and reports the first ``seq`` that is
wrong: a changed or reordered row (its own seq), a missing or duplicated seq, a checkpoint whose
signature is wrong (the checkpoint's seq), a chain whose hashes were rewritten consistently (the
first seq after the last checkpoint that still matched), a cut tail (the first missing seq).
A purged log starts from the checkpoint its chained ``audit.purged`` event names (see
:mod:`vault.audit.purge`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Connection, Engine, text

from vault.audit import chain
from vault.audit.actions import AuditAction
from vault.audit.schemas import VerifyResult
from vault.audit.seal import seal_pending
from vault.crypto import KeyMaterial
from vault.db import reader

VERIFY_BATCH = 20_000


def public_key(keys: KeyMaterial) -> ed25519.Ed25519PublicKey:
    return keys.audit_key.public_key()


def public_jwk(keys: KeyMaterial) -> dict[str, str]:
    """The checkpoint key as an RFC 8037 OKP JWK, for ``/.well-known/jwks.json``."""
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
        {"a": AuditAction.AUDIT_PURGED},
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


def seal_and_verify(*, engine: Engine, keys: KeyMaterial) -> VerifyResult:
    """Chain what is pending (with a checkpoint), then :func:`verify_engine`: the auditor's
    "verify" (the API's and the staff console's). Call it holding no transaction: on SQLite
    sealing needs the write lock."""
    seal_pending(engine=engine, keys=keys, checkpoint=True)
    return verify_engine(engine=engine, keys=keys)
