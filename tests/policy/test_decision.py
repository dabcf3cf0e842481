"""Table-driven tests of the one access decision, over every legal basis x consent status x
restriction x objection x client registration."""

import itertools

import pytest

from vault import PROJECT_ROOT
from vault.policy import load_policy
from vault.policy.decision import decide

POLICY = load_policy(PROJECT_ROOT / "policies")
# One purpose per legal basis, plus direct-marketing variants.
PURPOSES = {
    "consent_dm": POLICY.purposes["personalised_offers"],  # consent, direct marketing
    "consent_doi": POLICY.purposes["newsletter"],  # consent, double opt-in, direct marketing
    "consent_plain": POLICY.purposes["dietary_recommendations"],  # consent, not marketing
    "legitimate_interest": POLICY.purposes["analytics"],
    "contract": POLICY.purposes["order_fulfilment"],
    "legal_obligation": POLICY.purposes["tax_records"],
}
CONSENT = [
    "granted",
    "none",
    "pending_confirmation",
    "withdrawn",
    "refused",
    "expired",
    "reconsent_required",
]
STATUS = ["active", "restricted", "erased"]
OBJECTIONS = [frozenset(), frozenset({"direct_marketing"}), frozenset({"analytics"})]
REGISTERED = [True, False]


def expected(kind, purpose, consent, status, objections, registered):
    if not registered:
        return "purpose_not_permitted_for_client"
    if status == "erased":
        return "customer_erased"
    if status == "restricted":
        return "restricted"
    if purpose.direct_marketing and "direct_marketing" in objections:
        return "objected"
    if kind == "legitimate_interest" and purpose.id in objections:
        return "objected"
    if purpose.legal_basis.value == "consent":
        return {
            "granted": None,
            "none": "consent_missing",
            "pending_confirmation": "confirmation_pending",
            "withdrawn": "consent_withdrawn",
            "refused": "consent_refused",
            "expired": "consent_expired",
            "reconsent_required": "reconsent_required",
        }[consent]
    return None


@pytest.mark.parametrize(
    ("kind", "consent", "status", "objections", "registered"),
    list(itertools.product(PURPOSES, CONSENT, STATUS, OBJECTIONS, REGISTERED)),
)
def test_matrix(kind, consent, status, objections, registered):
    purpose = PURPOSES[kind]
    d = decide(
        purpose=purpose,
        client_purposes={purpose.id} if registered else {"tax_records_other"},
        customer_status=status,
        objections=objections,
        consent_status=consent,
    )
    reason = expected(kind, purpose, consent, status, objections, registered)
    assert d.reason == reason
    assert d.allowed is (reason is None)
    assert d.attributes == (tuple(purpose.attributes) if d.allowed else ())


@pytest.mark.parametrize(
    ("purpose_id", "objections", "allowed"),
    [
        # Art. 21(2) is absolute for direct marketing, whatever the basis ...
        ("personalised_offers", {"direct_marketing"}, False),
        ("newsletter", {"direct_marketing"}, False),
        # ... but leaves non-marketing purposes alone
        ("order_fulfilment", {"direct_marketing"}, True),
        ("analytics", {"direct_marketing"}, True),
        # an objection to one legitimate-interest purpose blocks that one only
        ("analytics", {"analytics"}, False),
        ("order_fulfilment", {"analytics"}, True),
        # an objection cannot switch off a legal obligation or a contract
        ("tax_records", {"tax_records", "direct_marketing"}, True),
        ("order_fulfilment", {"order_fulfilment"}, True),
    ],
)
def test_objection_rules(purpose_id, objections, allowed):
    purpose = POLICY.purposes[purpose_id]
    d = decide(
        purpose=purpose,
        client_purposes={purpose_id},
        customer_status="active",
        objections=objections,
        consent_status="granted",
    )
    assert d.allowed is allowed


def test_requested_attributes_are_intersected_and_foreign_ones_named():
    purpose = POLICY.purposes["newsletter"]
    kw = dict(
        purpose=purpose,
        client_purposes={"newsletter"},
        customer_status="active",
        objections=(),
        consent_status="granted",
    )
    ok = decide(**kw, requested=["email"])
    assert ok.allowed and ok.attributes == ("email",)
    bad = decide(**kw, requested=["email", "birth_date", "phone"])
    assert not bad.allowed and bad.reason == "attribute_not_permitted"
    assert bad.attributes == ("birth_date", "phone")


def test_registration_is_checked_before_anything_else():
    purpose = POLICY.purposes["personalised_offers"]
    d = decide(
        purpose=purpose,
        client_purposes={"newsletter"},
        customer_status="restricted",
        objections={"direct_marketing"},
        consent_status="none",
        requested=["phone"],
    )
    assert d.reason == "purpose_not_permitted_for_client"


def test_a_denial_never_reads_allowed():
    """Every reason has its own sentence; a reason without one still says it was denied."""
    from vault.policy.decision import DETAILS, Decision

    for reason in (*DETAILS, "customer_not_found", "some_future_reason"):
        assert Decision(False, reason).detail != "Allowed.", reason
    assert Decision(False, "some_future_reason").detail == "Access denied."
    assert Decision(True).detail == "Allowed."
