"""Rebuilding the projection from the ledger finds and fixes a hand-edited state."""

from sqlalchemy import text

from tests.factories import create_customer, record_consent
from vault.consent import rebuild as consent_rebuild
from vault.consent.models import ConsentState


def test_rebuild_detects_and_fixes_a_hand_edited_projection(session, runtime):
    a = create_customer(session, runtime)
    b = create_customer(session, runtime)
    record_consent(session, runtime, a.id, "personalised_offers")
    record_consent(session, runtime, b.id, "third_party_ads", "refused")
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
    session.rollback()
    session.execute(text("UPDATE consent_state SET status = 'granted' WHERE status = 'refused'"))
    session.execute(text("DELETE FROM consent_state WHERE purpose = 'personalised_offers'"))
    session.commit()
    report = consent_rebuild.rebuild(session=session, fix=False)
    session.rollback()
    assert {(d.customer_id, d.purpose) for d in report.differences} == {
        (a.id, "personalised_offers"),
        (b.id, "third_party_ads"),
    }
    assert report.events == 2
    fixed = consent_rebuild.rebuild(session=session, fix=True)
    session.commit()
    assert fixed.fixed and len(fixed.differences) == 2
    assert consent_rebuild.rebuild(session=session, fix=False).differences == []
    state = session.get(ConsentState, (b.id, "third_party_ads"))
    assert state.status == "refused"
