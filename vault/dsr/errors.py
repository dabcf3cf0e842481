"""The data-subject-rights errors: every refusal a DSR door can answer, with its code and status."""

from __future__ import annotations

from vault.errors import Conflict, InvalidRequest, NotFound, VaultError


class LegalHold(Conflict):
    code = "legal_hold"
    default_detail = "The customer's data is under a legal hold (GDPR Art. 17(3))."


class ErasureIncomplete(VaultError):
    """The erasure is committed, but removing its deleted bytes from the database files
    (SQLite: truncating the WAL) could not finish because a reader held the WAL. The vault
    finishes it with its next checkpoint; repeating the erasure answers 410."""

    code = "erasure_incomplete"
    status = 503
    default_detail = (
        "The customer is erased, but removing the deleted data from the database files has not "
        "finished yet; the vault completes it shortly on its own."
    )
    retry_after = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InvalidObjectionScope(InvalidRequest):
    code = "invalid_objection_scope"
    default_detail = (
        "An objection names 'direct_marketing' or the id of a legitimate-interest purpose."
    )


class ExtensionReasonRequired(InvalidRequest):
    code = "extension_reason_required"
    default_detail = "Extending a deadline needs a reason (GDPR Art. 12(3))."


class ExtensionTooLong(InvalidRequest):
    code = "extension_too_long"
    default_detail = "A deadline can be extended by at most two further months in total."


class RejectionReasonRequired(InvalidRequest):
    code = "rejection_reason_required"
    default_detail = "Rejecting a request needs a reason (GDPR Art. 12(4))."


class InvalidCloseReason(InvalidRequest):
    code = "invalid_close_reason"
    default_detail = (
        "A rejection takes a rejection reason (manifestly_unfounded, excessive, "
        "identity_not_verified, legal_exemption, other), a completion a completion reason "
        "(fulfilled, no_data_held, withdrawn, other)."
    )


class RequestNotFound(NotFound):
    code = "dsr_request_not_found"
    default_detail = "No data-subject request with this id."


class RequestClosed(Conflict):
    code = "dsr_request_closed"
    default_detail = "This request is already closed."


class ErasureCertificateNotFound(NotFound):
    code = "erasure_certificate_not_found"
    default_detail = "This customer has no erasure certificate (it was never erased here)."
