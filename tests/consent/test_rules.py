"""The pure consent rules: effective status, expiry and which decision wins."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from tests.consent.helpers import T0
from vault.consent import rules as consent_rules


def _purpose(runtime, pid, **changes):
    return runtime.policy.purposes[pid].model_copy(update=changes)


@dataclass
class S:
    status: str
    version: int = 1
    granted_at: datetime | None = T0
    decided_at: datetime = T0


# --- the pure decision rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "changes", "now", "expected"),
    [
        (None, {}, T0, "none"),
        (S("granted"), {}, T0, "granted"),
        (S("withdrawn", granted_at=None), {}, T0, "withdrawn"),
        (S("refused", granted_at=None), {}, T0, "refused"),
        (
            S("pending_confirmation", granted_at=None),
            {"double_opt_in": True},
            T0,
            "pending_confirmation",
        ),
        (S("granted"), {"double_opt_in": True}, T0, "pending_confirmation"),
        (S("confirmed"), {"double_opt_in": True}, T0, "granted"),
        # TTL counts from granted_at; the last instant still counts
        (S("granted"), {"consent_ttl_days": 10}, T0 + timedelta(days=10), "granted"),
        (S("granted"), {"consent_ttl_days": 10}, T0 + timedelta(days=10, seconds=1), "expired"),
        (S("granted"), {"consent_ttl_days": None}, T0 + timedelta(days=9999), "granted"),
        # version rule
        (S("granted", version=1), {"version": 2, "reconsent": True}, T0, "reconsent_required"),
        (S("granted", version=1), {"version": 2, "reconsent": False}, T0, "granted"),
        (S("granted", version=2), {"version": 2, "reconsent": True}, T0, "granted"),
        (
            S("withdrawn", version=1, granted_at=None),
            {"version": 2, "reconsent": True},
            T0,
            "withdrawn",
        ),
        (S("expired", granted_at=None), {}, T0, "expired"),
    ],
)
def test_effective_status(runtime, state, changes, now, expected):
    base = {"double_opt_in": False, "consent_ttl_days": None, "version": 1, "reconsent": False}
    purpose = _purpose(runtime, "personalised_offers", **{**base, **changes})
    assert consent_rules.effective_status(state, purpose, now) == expected


def test_expires_at_only_for_grants(runtime):
    purpose = _purpose(runtime, "personalised_offers", consent_ttl_days=30)
    assert consent_rules.expires_at(S("granted"), purpose) == T0 + timedelta(days=30)
    assert consent_rules.expires_at(S("withdrawn", granted_at=None), purpose) is None


@dataclass
class E:
    status: str
    occurred_at: datetime
    purpose_version: int = 1
    id: uuid.UUID = None  # type: ignore[assignment]

    def __post_init__(self):
        self.id = self.id or uuid.uuid4()


def test_apply_keeps_newer_decision_against_late_event():
    grant = E("granted", T0)
    decision, applied = consent_rules.apply(None, grant)
    assert applied and decision.granted_at == T0 and decision.event_id == grant.id
    late = E("withdrawn", T0 - timedelta(hours=1))
    after, applied = consent_rules.apply(decision, late)
    assert not applied and after == decision
    tie = E("withdrawn", T0)
    after, applied = consent_rules.apply(decision, tie)
    assert applied and after.status == "withdrawn" and after.granted_at is None
