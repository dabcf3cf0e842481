"""Reading consent as of any instant: table-driven over a 6-event history."""

from datetime import timedelta

import pytest

from tests.consent.helpers import T0
from tests.factories import create_customer, record_consent
from vault.consent import reads as consent_reads
from vault.consent import rebuild as consent_rebuild

H = [T0 + timedelta(days=d) for d in (0, 10, 20, 30, 40, 50)]


# (occurred_at, purpose, status); recorded in this order. Event 5 is a late store sync.
HISTORY = [
    (H[0], "personalised_offers", "granted"),
    (H[1], "third_party_ads", "refused"),
    (H[2], "personalised_offers", "withdrawn"),
    (H[3], "personalised_offers", "granted"),
    (H[4], "third_party_ads", "granted"),
    (H[2] + timedelta(days=5), "personalised_offers", "withdrawn"),  # late: older than H[3]
]


@pytest.mark.parametrize(
    ("as_of", "offers", "ads"),
    [
        (H[0] - timedelta(seconds=1), "none", "none"),
        (H[0], "granted", "none"),
        (H[0] + timedelta(days=5), "granted", "none"),
        (H[1] + timedelta(hours=1), "granted", "refused"),
        (H[2] + timedelta(days=1), "withdrawn", "refused"),
        # the late withdrawal occurred here, so as of then it is the decision
        (H[2] + timedelta(days=6), "withdrawn", "refused"),
        (H[3] + timedelta(seconds=1), "granted", "refused"),
        (H[4], "granted", "granted"),
        # personalised_offers has a 365-day TTL counted from H[3]
        (H[3] + timedelta(days=365), "granted", "granted"),
        (H[3] + timedelta(days=366), "expired", "granted"),
    ],
)
def test_as_of_between_events(session, runtime, as_of, offers, ads):
    customer = create_customer(session, runtime)
    recorded = H[5] + timedelta(days=1)
    for occurred_at, purpose, status in HISTORY:
        record_consent(
            session, runtime, customer.id, purpose, status, occurred_at=occurred_at, now=recorded
        )
    states = consent_reads.states_as_of(
        session=session,
        policy=runtime.policy,
        customer_id=customer.id,
        as_of=as_of,
        now=as_of + timedelta(days=400),
    )
    assert states["personalised_offers"].status == offers
    assert states["third_party_ads"].status == ads
    session.rollback()
    # and the live projection equals the replay of the whole ledger
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
