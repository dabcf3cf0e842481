"""The hash chain and checkpoint signatures: pure functions, no database session.

Hash of the event at ``seq``::

    hash[seq] = SHA-256(hash[seq - 1] || utf8(body[seq]))      hash[0] = GENESIS

``body`` is a compact canonical encoding: the fields below joined with the unit separator
U+001F (which validation forbids inside every field; the JSON of ``details`` escapes it), NULL
written as the empty string (validation forbids empty strings, so the two never collide)::

    seq, occurred_at (YYYY-MM-DD HH:MM:SS.ffffff UTC), actor_type, actor_id, action, outcome,
    customer_id (32 lower-case hex digits), purpose, attributes, reason, request_id, details

The database builds ``body`` itself (:func:`body_sql`), so sealing and verifying hash exactly the
bytes that are stored and verification streams one text column per row: no ORM objects, no
datetime or UUID conversions in Python.

A checkpoint signs ``CHECKPOINT_DOMAIN || seq || hash || signed_at`` with Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

SEP = "\x1f"
GENESIS = hashlib.sha256(b"consent-vault/audit-chain/v1").digest()
CHECKPOINT_DOMAIN = b"consent-vault/audit-checkpoint/v1"

# Body fields after seq, in hashing order.
BODY_COLUMNS = (
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


def body_sql(dialect: str, *, with_seq: bool) -> str:
    """SQL expression that renders the canonical body (without ``seq`` unless asked).

    One ``printf``/``format`` call per row, NULL rendering as the empty string: SQLite evaluates
    it about twice as fast as a chain of ``||`` and ``coalesce``."""
    columns = (["seq"] if with_seq else []) + list(BODY_COLUMNS)
    exprs = []
    for col in columns:
        if dialect == "postgresql" and col == "occurred_at":
            exprs.append("to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
        elif dialect == "postgresql" and col == "customer_id":
            exprs.append("replace(customer_id::text, '-', '')")
        else:
            # SQLite stores datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' and UUIDs as 32 hex digits.
            exprs.append(col)
    template = SEP.join(["%s"] * len(columns))
    func = "format" if dialect == "postgresql" else "printf"
    return f"{func}('{template}', {', '.join(exprs)})"


def body_bytes_sql(dialect: str) -> str:
    """The body with ``seq``, as UTF-8 bytes, so verification hashes what the driver returns
    without decoding and re-encoding a string per row."""
    body = body_sql(dialect, with_seq=True)
    return f"convert_to({body}, 'UTF8')" if dialect == "postgresql" else f"CAST({body} AS BLOB)"


def link(prev: bytes, seq: int, body_without_seq: str) -> bytes:
    """The hash of one event, given its predecessor's hash."""
    return hashlib.sha256(prev + f"{seq}{SEP}{body_without_seq}".encode()).digest()


def _signed_at_text(signed_at: datetime) -> str:
    return signed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_message(seq: int, chain_hash: bytes, signed_at: datetime) -> bytes:
    return b"|".join(
        [
            CHECKPOINT_DOMAIN,
            str(seq).encode(),
            chain_hash.hex().encode(),
            _signed_at_text(signed_at).encode(),
        ]
    )


def sign_checkpoint(
    key: ed25519.Ed25519PrivateKey, seq: int, chain_hash: bytes, signed_at: datetime
) -> bytes:
    return key.sign(checkpoint_message(seq, chain_hash, signed_at))


def checkpoint_valid(
    public_key: ed25519.Ed25519PublicKey,
    seq: int,
    chain_hash: bytes,
    signed_at: datetime,
    signature: bytes,
) -> bool:
    try:
        public_key.verify(bytes(signature), checkpoint_message(seq, bytes(chain_hash), signed_at))
    except InvalidSignature:
        return False
    return True


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
