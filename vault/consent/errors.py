"""The consent domain's errors. ``UnknownPurpose`` is shared: :mod:`vault.policy.errors`."""

from __future__ import annotations

from vault.errors import Conflict, NotFound, VaultError


class ConsentNotApplicable(VaultError):
    code = "purpose_not_consent_based"
    status = 422
    default_detail = "This purpose does not rest on consent; its legal basis is another."


class InvalidConsentStatus(VaultError):
    code = "invalid_consent_status"
    status = 422
    default_detail = "status must be one of granted, withdrawn, refused."


class OccurredInFuture(VaultError):
    code = "occurred_at_in_future"
    status = 422
    default_detail = "occurred_at lies more than 2 minutes in the future."


class InvalidEvidence(VaultError):
    code = "invalid_evidence"
    status = 422
    default_detail = "evidence must be a flat object of short scalar values."


class EvidenceContainsContactData(VaultError):
    code = "evidence_contains_contact_data"
    status = 422
    default_detail = "evidence must not contain contact data (e-mail, phone, name, address)."


class AsOfInFuture(VaultError):
    code = "as_of_in_future"
    status = 422
    default_detail = "as_of must not lie in the future."


class ConfirmationTokenNotFound(NotFound):
    code = "confirmation_token_not_found"
    default_detail = "This confirmation token is not known."


class ConfirmationTokenUsed(Conflict):
    code = "confirmation_token_used"
    default_detail = "This confirmation token has already been used."


class ConfirmationTokenExpired(VaultError):
    code = "confirmation_token_expired"
    status = 410
    default_detail = "This confirmation token has expired; ask for the consent again."


class ConfirmationSuperseded(Conflict):
    code = "confirmation_superseded"
    default_detail = "A later decision replaced the grant this token would confirm."


class IdempotencyKeyReused(VaultError):
    code = "idempotency_key_reused"
    status = 422
    default_detail = "This Idempotency-Key was used for a different request."


class IdempotencyConflict(Conflict):
    code = "idempotency_key_in_use"
    default_detail = "A request with this Idempotency-Key is being processed; retry."
