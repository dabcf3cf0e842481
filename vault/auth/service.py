"""Client registry, client-credentials grant and token checks."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.auth.models import Client
from vault.auth.scopes import Scope
from vault.config import Settings
from vault.crypto.signing import Signer, TokenInvalid
from vault.db import driver_execute
from vault.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from vault.policy import Policy
from vault.provenance import CLI, Caller

# The ``typ`` of access tokens (RFC 9068), so no other token the vault signs passes as one.
ACCESS_TOKEN_TYP = "at+jwt"

_hasher = PasswordHasher()
# Verified against when the client id is unknown, so timing does not tell which ids exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


@dataclass(frozen=True)
class Principal:
    """Who is calling: an app client with its current scopes and registered purposes, and the
    request it called in (set by the auth dependencies)."""

    client_id: str
    scopes: frozenset[str]
    purposes: frozenset[str]
    request_id: str | None = None

    @property
    def actor(self) -> str:
        return f"client:{self.client_id}"

    @property
    def caller(self) -> Caller:
        """Who did it, as every service that writes evidence takes it."""
        return Caller(self.actor, self.request_id)


def _split(text: str) -> list[str]:
    return [s for s in text.split() if s]


_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyz"  # letters only: ids never look like phone numbers


def new_client_id() -> str:
    return "cv_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))


def create_client(
    *,
    session: Session,
    policy: Policy,
    name: str,
    scopes: list[str],
    purposes: list[str],
    by: Caller = CLI,
) -> tuple[Client, str]:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("A client needs a name of 1 to 200 characters.", code="invalid_name")
    known = {s.value for s in Scope}
    bad = [s for s in scopes if s not in known]
    if bad or not scopes:
        raise InvalidRequest(
            f"Unknown or missing scopes: {', '.join(bad) or '(none given)'}. "
            f"Known: {', '.join(sorted(known))}.",
            code="invalid_scope",
        )
    unknown = [p for p in purposes if p not in policy.purposes]
    if unknown:
        raise InvalidRequest(f"Unknown purposes: {', '.join(unknown)}.", code="unknown_purpose")
    secret = secrets.token_urlsafe(32)
    client = Client(
        id=new_client_id(),
        name=name,
        secret_hash=_hasher.hash(secret),
        scopes=" ".join(dict.fromkeys(scopes)),
        purposes=" ".join(dict.fromkeys(purposes)),
    )
    session.add(client)
    session.flush()
    audit_record.record(
        session=session,
        by=by,
        action=AuditAction.CLIENT_CREATED,
        purpose=None,
        details={"client_id": client.id, "scopes": client.scopes, "purposes": client.purposes},
    )
    return client, secret


def authenticate_client(*, session: Session, client_id: str, client_secret: str) -> Client:
    client = session.get(Client, client_id) if len(client_id) <= 64 else None
    try:
        _hasher.verify(client.secret_hash if client else _DUMMY_HASH, client_secret)
    except (VerificationError, InvalidHashError):
        raise InvalidClient() from None
    if client is None or client.disabled_at is not None:
        raise InvalidClient()
    return client


def issue_access_token(
    *, client: Client, signer: Signer, settings: Settings, requested_scope: str | None
) -> tuple[str, list[str]]:
    allowed = _split(client.scopes)
    if requested_scope:
        wanted = _split(requested_scope)
        if not set(wanted) <= set(allowed):
            raise OAuthError(
                "The requested scope exceeds what the client is registered for.",
                code="invalid_scope",
            )
        granted = wanted
    else:
        granted = allowed
    token = signer.issue(
        typ=ACCESS_TOKEN_TYP,
        audience=settings.token_audience,
        issuer=settings.issuer,
        ttl=settings.token_ttl_seconds,
        subject=client.id,
        client_id=client.id,
        scope=" ".join(granted),
    )
    return token, granted


class _VerifiedTokens:
    """Claims of access tokens whose signature and claims were already checked.

    ECDSA verification is the largest fixed cost of a request; a token is valid until its
    ``exp`` whatever happens to it, so its verified claims can be reused until then. The client
    is still loaded on every request, so a deleted or disabled client is refused at once.
    Bounded; the oldest entries go first.
    """

    def __init__(self, size: int = 4096):
        self.size = size
        self._claims: dict[str, dict] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> dict | None:
        claims = self._claims.get(token)
        if claims is not None and claims["exp"] <= time.time():
            return None
        return claims

    def put(self, token: str, claims: dict) -> None:
        with self._lock:
            if len(self._claims) >= self.size:
                for old in list(self._claims)[: self.size // 4]:
                    self._claims.pop(old, None)
            self._claims[token] = claims


_verified = _VerifiedTokens()
_CLIENT_SQL = {
    True: "SELECT scopes, purposes, disabled_at FROM client WHERE id = ?",
    False: "SELECT scopes, purposes, disabled_at FROM client WHERE id = %s",
}


def verified_claims(*, token: str, signer: Signer, settings: Settings) -> dict:
    """The claims of an acceptable access token (signature, ``typ``, ``aud``, ``iss``, ``exp``,
    lifetime), without the database: what the edge checks before it reads a request body.
    Verified once per token, then answered from :data:`_verified` until ``exp``."""
    cache_key = f"{signer.kid}|{settings.issuer}|{settings.token_audience}|{token}"
    claims = _verified.get(cache_key)
    if claims is None:
        try:
            claims = signer.verify(
                token,
                typ=ACCESS_TOKEN_TYP,
                audience=settings.token_audience,
                issuer=settings.issuer,
                max_lifetime=settings.token_ttl_seconds,
            )
        except TokenInvalid:
            raise InvalidToken() from None
        _verified.put(cache_key, claims)
    return claims


def token_scopes(claims: dict) -> set[str]:
    """The scopes an access token's claims carry (the client may hold fewer by now)."""
    return set(_split(str(claims.get("scope", ""))))


def principal_from_token(
    *, session: Session, token: str, signer: Signer, settings: Settings
) -> Principal:
    """Verify an access token and load the client as it is now (deleted or disabled -> 401)."""
    claims = verified_claims(token=token, signer=signer, settings=settings)
    client_id = str(claims.get("client_id", ""))
    conn = session.connection()
    # plain driver SQL: this runs on every authenticated request
    row = driver_execute(conn, _CLIENT_SQL[conn.dialect.name == "sqlite"], (client_id,)).fetchone()
    if row is None or row[2] is not None or claims.get("sub") != client_id:
        raise InvalidToken()
    return Principal(
        client_id=client_id,
        scopes=frozenset(token_scopes(claims) & set(_split(row[0]))),
        purposes=frozenset(_split(row[1])),
    )


def client_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """``{client id: name}`` of the known clients among ``ids``."""
    ids = list(ids)
    if not ids:
        return {}
    return dict(session.execute(select(Client.id, Client.name).where(Client.id.in_(ids))).all())


def to_public(client: Client) -> dict:
    return {
        "client_id": client.id,
        "name": client.name,
        "scopes": _split(client.scopes),
        "purposes": _split(client.purposes),
        "created_at": client.created_at,
    }
