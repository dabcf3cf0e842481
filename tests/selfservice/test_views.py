"""What the self-service page shows: re-consent with what changed, purposes with their facts."""

from __future__ import annotations

import pytest

from tests import factories
from vault.policy.models import I18nText
from vault.selfservice import i18n, views


def _bumped(policy, purpose_id: str):
    """The policy with ``purpose_id`` raised to version 2 with ``reconsent``."""
    purpose = policy.purposes[purpose_id].model_copy(
        update={
            "version": 2,
            "reconsent": True,
            "changes": I18nText(
                de="Neu: wir nutzen auch Ihre Postleitzahl.",
                en="New: we also use your postal code.",
            ),
        }
    )
    return policy.model_copy(update={"purposes": {**policy.purposes, purpose_id: purpose}})


def test_reconsent_required_shows_what_changed(session, runtime):
    customer = factories.create_customer(session, runtime)
    factories.record_consent(session, runtime, customer.id, "personalised_offers", "granted")
    policy = _bumped(runtime.policy, "personalised_offers")
    view = views.consents_view(session=session, policy=policy, customer_id=customer.id, lang="en")
    session.rollback()
    by_id = {p.id: p for p in view.consent}
    offers = by_id["personalised_offers"]
    assert offers.status == "reconsent_required"
    assert offers.changes == "New: we also use your postal code."
    assert not offers.switched_on  # one click on the switch grants the new version
    assert by_id["push_notifications"].changes is None
    html = i18n.render("consents.html", "de", title="t", csrf="0" * 64, view=view, here="/me")
    assert "Was sich geändert hat:" in html
    assert "Neu: wir nutzen" not in html  # the view was built in English
    assert "New: we also use your postal code." in html
    assert "deshalb brauchen wir Ihre Einwilligung neu" in html


def test_purpose_view_shows_reduced_attributes_recipients_and_basis(session, runtime):
    customer = factories.create_customer(session, runtime)
    view = views.consents_view(
        session=session, policy=runtime.policy, customer_id=customer.id, lang="de"
    )
    session.rollback()
    analytics = next(p for p in view.other if p.id == "analytics")
    assert analytics.objectable and not analytics.objected
    assert ("Geburtsdatum", "year") in [(a.label, a.reduction) for a in analytics.attributes]
    assert analytics.recipients == [("Statistik-Dienstleister (Auftragsverarbeiter)", "processor")]
    assert {p.id for p in view.direct_marketing} >= {"newsletter", "third_party_ads"}
    assert not any(p.objectable for p in view.consent)


@pytest.mark.parametrize(
    ("name", "stored", "de", "en"),
    [
        ("gender", "not_stated", "keine Angabe", "not stated"),
        ("preferred_language", "en", "Englisch", "English"),
        ("country", "DE", "Deutschland", "Germany"),
        ("country", "AT", "Österreich", "Austria"),
        ("birth_date", "1984-05-17", "17.05.1984", "May 17, 1984"),
        ("loyalty_points", 1250, "1.250", "1,250"),
        ("newsletter_html", True, "ja", "yes"),
        ("first_name", "Erika", "Erika", "Erika"),
        ("birth_date", "not-a-date", "not-a-date", "not-a-date"),  # shown as stored
    ],
)
def test_values_read_as_labels_in_the_page_language(runtime, name, stored, de, en):
    attribute = runtime.policy.attributes[name]
    assert i18n.attribute_value(attribute, stored, "de") == de
    assert i18n.attribute_value(attribute, stored, "en") == en
