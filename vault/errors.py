"""One error hierarchy. Services raise these; one handler turns them into ``{"error", "detail"}``.

Details are written for the client and must never contain plaintext PII, keys or tokens.

A refusal that is evidence (a legal hold stopping an erasure, a throttled link request) is an
*audited refusal*: the service that refuses attaches the writing of its audit row with
:meth:`VaultError.audited`, and :func:`vault.db.transaction` writes it in a short transaction of
its own after rolling the refused work back. So the refusal is audited at every door that calls
the service, and no route has to remember it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

if TYPE_CHECKING:
    from sqlmodel import Session


class ErrorBody(BaseModel):
    error: str
    detail: str


class VaultError(Exception):
    code: ClassVar[str] = "vault_error"
    status: ClassVar[int] = 400
    default_detail: ClassVar[str] = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, code: str | None = None, **extra: Any):
        self.detail = detail or self.default_detail
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.extra = extra
        self.audit: Callable[[Session], None] | None = None
        super().__init__(self.detail)

    def audited(self, write_audit: Callable[[Session], None]) -> Self:
        """Make this an audited refusal: ``write_audit(session)`` records it, committed even
        though the transaction that raised it rolls back (see :func:`vault.db.transaction`)."""
        self.audit = write_audit
        return self

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail, **self.extra}

    def headers(self) -> dict[str, str] | None:
        """Response headers the error needs (``Retry-After`` of a 429)."""
        return None


class InvalidRequest(VaultError):
    code = "invalid_request"
    status = 422


class OAuthError(VaultError):
    """RFC 6749 section 5.2 errors of the token endpoint."""

    code = "invalid_request"
    status = 400


class ValidationFailed(VaultError):
    """A value did not pass the attribute's type rules; ``attribute`` names it."""

    code = "invalid_attribute_value"
    status = 422


class UnknownAttribute(VaultError):
    """An attribute name the policy does not define. The name is client input (it may be an
    e-mail address sent as a key): never echoed, in the detail or anywhere else."""

    code = "unknown_attribute"
    status = 422
    default_detail = "The request names an attribute the policy does not define."


class NotAuthenticated(VaultError):
    """No usable bearer token. ``WWW-Authenticate`` as RFC 6750 section 3 asks; the body code
    stays ``not_authenticated`` whether the token was missing or bad."""

    code = "not_authenticated"
    status = 401
    default_detail = "A valid bearer token is required."
    challenge: ClassVar[str] = 'Bearer realm="consent-vault"'

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": self.challenge}


class InvalidToken(NotAuthenticated):
    default_detail = "The bearer token is invalid or expired."
    challenge = 'Bearer realm="consent-vault", error="invalid_token"'


class InvalidClient(VaultError):
    code = "invalid_client"
    status = 401
    default_detail = "Unknown client or wrong secret."


class Forbidden(VaultError):
    code = "insufficient_scope"
    status = 403
    default_detail = "The token does not carry the scope this operation needs."

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": 'Bearer realm="consent-vault", error="insufficient_scope"'}


class NotFound(VaultError):
    code = "not_found"
    status = 404
    default_detail = "No such resource."


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    default_detail = "No customer with this id."


class Conflict(VaultError):
    code = "conflict"
    status = 409


class CustomerErased(VaultError):
    code = "customer_erased"
    status = 410
    default_detail = "This customer has been erased."


class DecryptionError(VaultError):
    """Every failure to unwrap a key or decrypt a value: wrong key, moved or altered ciphertext.

    Deliberately carries no information about which bytes were wrong.
    """

    code = "integrity_error"
    status = 500
    default_detail = "Stored data failed its integrity check and was not returned."


class InternalError(VaultError):
    """Anything unexpected: the body says nothing more (the log has the request id)."""

    code = "internal_error"
    status = 500
    default_detail = "An internal error occurred."


class PayloadTooLarge(VaultError):
    code = "payload_too_large"
    status = 413
    default_detail = "The request body is too large."


class RequestInvalid(InvalidRequest):
    """What the app answers when FastAPI's validation of a request's parameters or body fails."""

    code = "validation_error"


def responses(*errors: type[VaultError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route, so the committed OpenAPI documents every error it can raise."""
    out: dict[int | str, dict[str, Any]] = {}
    add_responses(out, *errors)
    return out


def add_responses(out: dict[int | str, dict[str, Any]], *errors: type[VaultError]) -> None:
    """Add ``errors`` to a route's ``responses``; their codes go into the description."""
    for err in errors:
        entry = out.setdefault(err.status, {"model": ErrorBody, "description": ""})
        entry.setdefault("model", ErrorBody)
        codes = [c for c in entry.get("description", "").split(", ") if c]
        if err.code not in codes:
            codes.append(err.code)
        entry["description"] = ", ".join(codes)
