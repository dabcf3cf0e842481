"""Every audit action name the vault writes: one ``AuditAction`` member per name.

An action is a dotted lower-case name (``<area>.<what>``); :func:`vault.audit.record.record`
checks that shape. A ``StrEnum`` member is its string, so a member stored in ``audit_event.action``
reads back as the same text. ``docs/audit.md`` lists every member (a test keeps the two equal).
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # the audit log itself
    AUDIT_READ = "audit.read"
    AUDIT_PURGED = "audit.purged"
    # API clients
    CLIENT_CREATED = "client.created"
    CLIENT_SCOPE_GRANTED = "client.scope_granted"
    CLIENT_GRANT_REFUSED = "client.grant_refused"
    CLIENT_DISABLED = "client.disabled"
    CLIENT_ENABLED = "client.enabled"
    CLIENT_SECRET_ROTATED = "client.secret_rotated"
    CLIENT_DELETED = "client.deleted"
    # consent
    CONSENT_RECORDED = "consent.recorded"
    # contacts a sending tool reported (POST /v1/contacts)
    CONTACT_RECORDED = "contact.recorded"
    # customers
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_IMPORTED = "customer.imported"
    CUSTOMER_LOOKUP = "customer.lookup"
    CUSTOMER_RECTIFIED = "customer.rectified"
    # releases of data
    DATA_READ = "data.read"
    DATA_EXPORT = "data.export"
    # data subject requests
    DSR_REQUEST_RECEIVED = "dsr.request_received"
    DSR_REQUEST_EXTENDED = "dsr.request_extended"
    DSR_REQUEST_CLOSED = "dsr.request_closed"
    DSR_ACCESS = "dsr.access"
    DSR_PORTABILITY = "dsr.portability"
    DSR_RESTRICTION = "dsr.restriction"
    DSR_RESTRICTION_LIFTED = "dsr.restriction_lifted"
    DSR_OBJECTION = "dsr.objection"
    DSR_OBJECTION_WITHDRAWN = "dsr.objection_withdrawn"
    DSR_LEGAL_HOLD_SET = "dsr.legal_hold_set"
    DSR_LEGAL_HOLD_CLEARED = "dsr.legal_hold_cleared"
    DSR_ERASURE = "dsr.erasure"
    # the customer's own filters (vault.preferences)
    PREFERENCE_CHANGED = "preference.changed"
    # retention
    RETENTION_RUN = "retention.run"
    RETENTION_DELETED = "retention.deleted"
    # the self-service pages
    SELFSERVICE_LINK_ISSUED = "selfservice.link_issued"
    SELFSERVICE_LINK_THROTTLED = "selfservice.link_throttled"
    SELFSERVICE_LOGIN = "selfservice.login"
    SELFSERVICE_LOGOUT = "selfservice.logout"
    SELFSERVICE_DATA_VIEWED = "selfservice.data_viewed"
    # webhooks
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DISABLED = "webhook.disabled"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
