from enum import StrEnum


class Scope(StrEnum):
    CUSTOMERS_WRITE = "customers:write"
    CONSENT_WRITE = "consent:write"
    CONSENT_READ = "consent:read"
    CONSENT_CONFIRM = "consent:confirm"
    DATA_READ = "data:read"
    DSR_EXECUTE = "dsr:execute"
    SELFSERVICE_ISSUE = "selfservice:issue"
    AUDIT_READ = "audit:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    CONTACTS_WRITE = "contacts:write"
    ADMIN = "admin"


SCOPE_DESCRIPTIONS: dict[str, str] = {
    Scope.CUSTOMERS_WRITE: "create, rectify and look up customers",
    Scope.CONSENT_WRITE: "record consent events",
    Scope.CONSENT_READ: "read consent state and history",
    Scope.CONSENT_CONFIRM: "receive double opt-in tokens and confirm them (apps sending their own "
    "confirmation mail; never for grants the same client recorded)",
    Scope.DATA_READ: "read customer data for the client's registered purposes",
    Scope.DSR_EXECUTE: "execute data-subject requests (export, erasure, restriction, objection)",
    Scope.SELFSERVICE_ISSUE: "issue self-service magic links",
    Scope.AUDIT_READ: "read and verify the audit log",
    Scope.WEBHOOKS_MANAGE: "manage webhook subscriptions",
    Scope.CONTACTS_WRITE: "report contacts sent to customers (what frequency caps count)",
    Scope.ADMIN: "manage app clients",
}

# Scopes that reach customer data: each grant is its own audit event, and only an operator
# (the ``vault clients`` command) may grant them, or ``admin`` (docs/security.md).
CUSTOMER_DATA_SCOPES: frozenset[str] = frozenset(
    {
        Scope.DATA_READ,
        Scope.DSR_EXECUTE,
        Scope.CUSTOMERS_WRITE,
        Scope.CONSENT_WRITE,
        Scope.CONSENT_CONFIRM,
        Scope.SELFSERVICE_ISSUE,
        Scope.CONTACTS_WRITE,  # tells which ids exist (per-line customer_not_found)
    }
)
OPERATOR_SCOPES: frozenset[str] = CUSTOMER_DATA_SCOPES | {Scope.ADMIN}
