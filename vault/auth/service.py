"""Client registry and lifecycle, client-credentials grant and token checks.

**Separation of duties.** ``admin`` and the scopes that reach customer data
(:data:`~vault.auth.scopes.OPERATOR_SCOPES`) are granted only by an operator, that is the
``vault clients`` command (actor ``cli``): over HTTP an ``admin`` can register clients for the
audit, consent-reading and webhook jobs, but neither make another admin nor give itself, through
a client it registers or a secret it rotates, a way to read or change customer data. Each grant
of such a scope is an audit event of its own (``client.scope_granted``); a refused attempt is an
audited refusal (``client.grant_refused``).

**Lifecycle.** Disable, enable, rotate the secret, delete: each audited, each effective on the
next request, because every token check reads the client row by primary key (one indexed
lookup, measured in docs/security.md) instead of trusting a cache another worker would not see.
"""

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
from vault.auth.errors import ClientDeleted, ClientNotFound, OperatorRequired
from vault.auth.models import Client
from vault.auth.scopes import CUSTOMER_DATA_SCOPES, OPERATOR_SCOPES, Scope
from vault.config import Settings
from vault.crypto.signing import Signer, TokenInvalid
from vault.db import driver_execute, utcnow
from vault.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from vault.policy import Policy
from vault.provenance import CLI, Caller

# The ``typ`` of access tokens (RFC 9068), so no other token the vault signs passes as one.
ACCESS_TOKEN_TYP = "at+jwt"

_hasher = PasswordHasher()
# Verified against when the client id is unknown or deleted, so timing does not tell which ids
# exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))
# What a deleted client keeps instead of its secret's hash: matches no secret.
DELETED_SECRET = "!deleted"
PAGE_MAX = 1000


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
        return f"{CLIENT_ACTOR}{self.client_id}"

    @property
    def caller(self) -> Caller:
        """Who did it, as every service that writes evidence takes it."""
        return Caller(self.actor, self.request_id)


def _split(text: str) -> list[str]:
    return [s for s in text.split() if s]


_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyz"  # letters only: ids never look like phone numbers


def new_client_id() -> str:
    return "cv_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))


def is_operator(by: Caller) -> bool:
    """The ``vault`` command on the host (``cli``, ``cli:demo``): the one who may grant
    :data:`OPERATOR_SCOPES`. Any API client, staff member or customer is not."""
    return by.actor == "cli" or by.actor.startswith("cli:")


def _refuse_unless_operator(
    session: Session, by: Caller, *, client_id: str | None, scopes: Iterable[str], operation: str
) -> None:
    held = sorted(set(scopes) & OPERATOR_SCOPES)
    if not held or is_operator(by):
        return
    names = ", ".join(held)

    def write(s: Session) -> None:
        audit_record.record(
            session=s,
            by=by,
            action=AuditAction.CLIENT_GRANT_REFUSED,
            purpose=None,
            outcome="denied",
            reason="operator_required",
            details={"client_id": client_id, "operation": operation, "scopes": " ".join(held)},
        )

    raise OperatorRequired(
        f"Only an operator ('vault clients' on the host) may {operation.replace('_', ' ')} a "
        f"client with {names}: admin over HTTP cannot grant admin or access to customer data."
    ).audited(write)


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
    _refuse_unless_operator(session, by, client_id=None, scopes=scopes, operation="create")
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
    # every grant of admin or of a scope that reaches customer data: an event of its own
    for scope in _split(client.scopes):
        if scope in OPERATOR_SCOPES:
            details = {"client_id": client.id, "scope": scope}
            if scope in CUSTOMER_DATA_SCOPES:
                details["purposes"] = client.purposes
            audit_record.record(
                session=session,
                by=by,
                action=AuditAction.CLIENT_SCOPE_GRANTED,
                purpose=None,
                details=details,
            )
    return client, secret


def get_client(*, session: Session, client_id: str) -> Client:
    client = session.get(Client, client_id) if len(client_id) <= 64 else None
    if client is None:
        raise ClientNotFound()
    return client


def list_clients(
    *, session: Session, include_deleted: bool = False, limit: int = PAGE_MAX
) -> list[Client]:
    """Clients, oldest first; deleted ones only when asked for."""
    query = select(Client).order_by(Client.created_at, Client.id).limit(limit)
    if not include_deleted:
        query = query.where(Client.deleted_at.is_(None))
    return list(session.execute(query).scalars())


def find_active_client(
    *, session: Session, name: str, scopes: list[str], purposes: list[str]
) -> Client | None:
    """The newest active client with exactly this name, scopes and purposes (``vault demo``
    reuses its client this way instead of adding one per run)."""
    rows = session.execute(
        select(Client)
        .where(Client.name == name, Client.deleted_at.is_(None), Client.disabled_at.is_(None))
        .order_by(Client.created_at.desc())
    ).scalars()
    for client in rows:
        if set(_split(client.scopes)) == set(scopes) and set(_split(client.purposes)) == set(
            purposes
        ):
            return client
    return None


def _changeable(session: Session, client_id: str) -> Client:
    client = get_client(session=session, client_id=client_id)
    if client.deleted_at is not None:
        raise ClientDeleted()
    return client


def _audit(session: Session, by: Caller, action: AuditAction, client: Client, **extra) -> None:
    audit_record.record(
        session=session,
        by=by,
        action=action,
        purpose=None,
        details={"client_id": client.id, **extra},
    )


def disable_client(*, session: Session, client_id: str, by: Caller = CLI) -> Client:
    """Stop a client: its secret and its live tokens are refused from the next request on.
    Disabling a disabled client changes nothing (and records nothing)."""
    client = _changeable(session, client_id)
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        session.add(client)
        session.flush()
        _audit(session, by, AuditAction.CLIENT_DISABLED, client)
    return client


def enable_client(*, session: Session, client_id: str, by: Caller = CLI) -> Client:
    """Let a disabled client in again (its tokens from before are valid again until they
    expire; rotate the secret too if it may have leaked)."""
    client = _changeable(session, client_id)
    if client.disabled_at is not None:
        client.disabled_at = None
        session.add(client)
        session.flush()
        _audit(session, by, AuditAction.CLIENT_ENABLED, client)
    return client


def rotate_secret(*, session: Session, client_id: str, by: Caller = CLI) -> tuple[Client, str]:
    """A new secret, shown once; the old one and every token issued under it stop at once."""
    client = _changeable(session, client_id)
    _refuse_unless_operator(
        session, by, client_id=client.id, scopes=_split(client.scopes), operation="rotate_secret"
    )
    secret = secrets.token_urlsafe(32)
    client.secret_hash = _hasher.hash(secret)
    client.secret_version += 1
    client.secret_rotated_at = utcnow()
    session.add(client)
    session.flush()
    _audit(
        session, by, AuditAction.CLIENT_SECRET_ROTATED, client, secret_version=client.secret_version
    )
    return client, secret


def delete_client(*, session: Session, client_id: str, by: Caller = CLI) -> Client:
    """Delete a client for good: its secret hash is dropped, its tokens stop on the next
    request, it cannot be enabled again. The row stays (name, scopes, dates) so that the audit
    log, webhooks and idempotency records it left behind still name a known client."""
    client = _changeable(session, client_id)
    client.deleted_at = utcnow()
    client.secret_hash = DELETED_SECRET
    session.add(client)
    session.flush()
    _audit(session, by, AuditAction.CLIENT_DELETED, client)
    return client


def authenticate_client(*, session: Session, client_id: str, client_secret: str) -> Client:
    client = session.get(Client, client_id) if len(client_id) <= 64 else None
    usable = client is not None and client.deleted_at is None
    try:
        _hasher.verify(client.secret_hash if usable else _DUMMY_HASH, client_secret)
    except (VerificationError, InvalidHashError):
        raise InvalidClient() from None
    if not usable or client.disabled_at is not None:
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
        sv=client.secret_version,
    )
    return token, granted


class _VerifiedTokens:
    """Claims of access tokens whose signature and claims were already checked.

    ECDSA verification is the largest fixed cost of a request; a token's signature stays valid
    until its ``exp`` whatever happens to its client, so its verified claims can be reused until
    then. The client is still loaded on every request (not cached: a cache in one worker would
    not see a change made through another), so a deleted, disabled or rotated client is
    refused at once.
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
_CLIENT_COLUMNS = "scopes, purposes, disabled_at, deleted_at, secret_version"
_CLIENT_SQL = {
    True: f"SELECT {_CLIENT_COLUMNS} FROM client WHERE id = ?",  # noqa: S608
    False: f"SELECT {_CLIENT_COLUMNS} FROM client WHERE id = %s",  # noqa: S608
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
    """Verify an access token and load the client as it is now: deleted, disabled, or its
    secret rotated since the token was issued -> 401."""
    claims = verified_claims(token=token, signer=signer, settings=settings)
    client_id = str(claims.get("client_id", ""))
    conn = session.connection()
    # plain driver SQL: this runs on every authenticated request
    row = driver_execute(conn, _CLIENT_SQL[conn.dialect.name == "sqlite"], (client_id,)).fetchone()
    if (
        row is None
        or row[2] is not None
        or row[3] is not None
        or claims.get("sv", 0) != row[4]
        or claims.get("sub") != client_id
    ):
        raise InvalidToken()
    return Principal(
        client_id=client_id,
        scopes=frozenset(token_scopes(claims) & set(_split(row[0]))),
        purposes=frozenset(_split(row[1])),
    )


CLIENT_ACTOR = "client:"


def current_principals(session: Session, actors: Iterable[str]) -> dict[str, Principal]:
    """``{actor: the client as it is now}`` for the actors among ``actors`` that name an app
    client (``client:<id>``, as :attr:`Principal.actor` writes it). A deleted or disabled
    client holds no scope and no purpose; actors that are no client (the CLI) are left out."""
    ids = {a.removeprefix(CLIENT_ACTOR) for a in actors if a.startswith(CLIENT_ACTOR)}
    if not ids:
        return {}
    rows = session.execute(
        select(Client.id, Client.scopes, Client.purposes).where(
            Client.id.in_(ids), Client.disabled_at.is_(None), Client.deleted_at.is_(None)
        )
    ).all()
    now = {cid: (frozenset(_split(s)), frozenset(_split(p))) for cid, s, p in rows}
    return {
        CLIENT_ACTOR + cid: Principal(cid, *now.get(cid, (frozenset(), frozenset()))) for cid in ids
    }


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
        "status": client.status,
        "created_at": client.created_at,
        "disabled_at": client.disabled_at,
        "deleted_at": client.deleted_at,
        "secret_rotated_at": client.secret_rotated_at,
    }
