"""The audit domain's errors."""

from __future__ import annotations

from vault.errors import InvalidRequest, VaultError


class InvalidAuditEvent(VaultError):
    code = "invalid_audit_event"
    status = 500  # a programming error in the caller, never the client's fault
    default_detail = "An audit event could not be recorded."


class AuditPiiRefused(InvalidAuditEvent):
    code = "audit_pii_refused"
    default_detail = "An audit event carried a value that looks like personal data."


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"
    default_detail = "The cursor is not valid; start again without one."
