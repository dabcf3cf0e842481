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


class OccurredTooLongAgo(VaultError):
    code = "occurred_at_too_old"
    status = 422
    default_detail = (
        "occurred_at lies further back than the vault accepts without late_import "
        "(VAULT_CONSENT_BACKDATE_DAYS); send late_import: true for a statement collected "
        "that long ago."
    )


class InvalidEvidence(VaultError):
    """A value of an allowed evidence key that is not of its type (``key`` names it)."""

    code = "invalid_evidence"
    status = 422
    default_detail = "evidence must be an object of the allowed keys with their typed values."


class EvidenceKeyNotAllowed(VaultError):
    """An evidence key outside the allowlist (``key`` names it when it is an identifier)."""

    code = "evidence_key_not_allowed"
    status = 422
    default_detail = "evidence holds a key that is not allowed."


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


class ChannelNotAllowed(VaultError):
    """``channel: selfservice`` names the customer's own page; only that page records it."""

    code = "channel_not_allowed"
    status = 422
    default_detail = (
        "channel 'selfservice' is recorded only by the self-service page itself; name the "
        "channel your app collected the statement in (web, app, store, call_center, email, api)."
    )


class ConfirmationByRecorder(VaultError):
    code = "confirmation_by_recorder"
    status = 403
    default_detail = (
        "A double opt-in grant cannot be confirmed by the client that recorded it; the "
        "confirmation must come from the customer's answer to the confirmation mail."
    )
