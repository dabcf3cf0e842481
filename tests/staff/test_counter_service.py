"""Issue 19 item 2 (store and call centre), the service: find by the blind index only, the
customer card (consents with history, values only through the role's purposes), statements
with touchpoint, staff id, store and script version through the consent service, the link
mail, a data-subject request; every one an audit event with actor ``staff:<id>``."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from sqlalchemy import select

from tests import factories
from vault import PROJECT_ROOT
from vault.audit.models import AuditEvent
from vault.consent.models import ConsentEvent
from vault.db import transaction
from vault.dsr.models import DataSubjectRequest
from vault.errors import CustomerNotFound
from vault.mail.models import MailMessage
from vault.policy import PolicyError, load_policy
from vault.provenance import Caller
from vault.selfservice.models import SelfserviceLink
from vault.staff import counter

STORE = counter.Counter(staff_id="stkoeln", role="store", store_id="koeln-ehrenfeld")
PHONE = counter.Counter(staff_id="stphone", role="call_center")


def _customer(session, runtime, **attrs):
    attrs.setdefault("phone", "+49 221 5550" + str(uuid.uuid4().int % 1000).zfill(3))
    attrs.setdefault("loyalty_number", "TE" + str(uuid.uuid4().int % 10**8).zfill(8))
    attrs.setdefault("birth_date", "1984-05-17")
    attrs.setdefault("dietary_restrictions", "Erdnüsse")
    return factories.create_customer(session, runtime, **attrs)


def _audit(session, action, actor_id="stkoeln"):
    session.rollback()
    return list(
        session.execute(
            select(AuditEvent).where(
                AuditEvent.action == action,
                AuditEvent.actor_type == "staff",
                AuditEvent.actor_id == actor_id,
            )
        ).scalars()
    )


# --- the policy -----------------------------------------------------------------------------


def test_example_policy_has_stores_roles_and_scripts():
    policy = load_policy(PROJECT_ROOT / "policies")
    assert policy.stores["koeln-ehrenfeld"].name.de == "Köln-Ehrenfeld"
    assert policy.staff_roles["store"].purposes == ["loyalty_programme"]
    script = policy.scripts["newsletter_phone"]
    assert script.touchpoints == ["call_center"] and script.ref == "newsletter_phone.v3"
    assert script.text.de and script.text.en


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ('purposes = ["newsletter"]\n', 'purposes = ["newsleter"]\n', "unknown purpose"),
        ('purposes = ["newsletter"]\n', 'purposes = ["analytics"]\n', "does not rest on consent"),
        ('touchpoints = ["store"]\n', 'touchpoints = ["till"]\n', "touchpoints.0"),
        ('id = "offers_counter"', 'id = "newsletter_counter"', "duplicate script id"),
        ('role = "call_center"', 'role = "cashier"', "unknown role"),
        ('role = "call_center"', 'role = "store"', "staff_role 'store': duplicate staff_role"),
        (
            'id = "berlin-mitte"',
            'id = "koeln-ehrenfeld"',
            "store 'koeln-ehrenfeld': duplicate store",
        ),
        (
            'purposes = ["loyalty_programme", "order_fulfilment"]',
            'purposes = ["dietary_recommendations"]',
            "special-category",
        ),
        ('text.en = "Would you', 'text.en = " "  # "Would you', "missing en translation of text"),
    ],
)
def test_policies_check_refuses_a_broken_staff_file(tmp_path, old, new, expect):
    from typer.testing import CliRunner

    from vault.cli import app

    d = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", d)
    path = d / "staff.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert any(expect in p and "staff.toml" in p for p in info.value.problems), info.value
    result = CliRunner().invoke(app, ["policies", "check", str(d)])
    assert result.exit_code == 1 and expect in result.output


def test_the_staff_file_is_optional(tmp_path):
    d = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", d)
    (d / "staff.toml").unlink()
    policy = load_policy(d)
    assert policy.scripts == {} and policy.stores == {}


def test_counter_for_needs_a_counter_role_and_a_known_store(runtime):
    policy = runtime.policy
    c = counter.counter_for(policy, staff_id="st1", role="store", store="Köln-Ehrenfeld")
    assert c.store_id == "koeln-ehrenfeld" and c.actor == "staff:st1"
    with pytest.raises(counter.StoreNotInPolicy):
        counter.counter_for(policy, staff_id="st1", role="store", store="Atlantis")
    with pytest.raises(counter.NotACounterRole):
        counter.counter_for(policy, staff_id="st1", role="auditor", store=None)
    assert (
        counter.counter_for(policy, staff_id="st2", role="call_center", store=None).store_id is None
    )


# --- find -----------------------------------------------------------------------------------


def test_find_by_phone_email_and_loyalty_number_through_the_blind_index(runtime, session):
    c = _customer(session, runtime, phone="+49 221 5550123", loyalty_number="TE12345678")
    for by, value in [
        ("phone", "0221 5550123"),  # typed as the customer says it
        ("loyalty_number", "TE12345678"),
    ]:
        with transaction(runtime.engine) as s:
            found = counter.find_customer(
                session=s,
                envelope=runtime.envelope,
                policy=runtime.policy,
                counter=STORE,
                by=by,
                value=value,
            )
        assert found == c.id
    events = _audit(session, "customer.lookup")
    assert [e.attributes for e in events] == ["phone", "loyalty_number"]
    assert all(e.customer_id == c.id and json.loads(e.details) == STORE.details for e in events)


@pytest.mark.parametrize(
    ("by", "value"), [("phone", "+49 30 0000000"), ("email", "nobody@example.de"), ("phone", "x")]
)
def test_a_search_finds_one_or_no_one_and_says_nothing_else(runtime, session, by, value):
    _customer(session, runtime)
    with pytest.raises(CustomerNotFound), transaction(runtime.engine) as s:
        counter.find_customer(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=STORE,
            by=by,
            value=value,
        )


def test_a_search_that_finds_no_one_is_audited_too(runtime, session):
    with transaction(runtime.engine) as s, pytest.raises(CustomerNotFound):
        counter.find_customer(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=STORE,
            by="email",
            value="nobody@example.de",
        )
    [event] = _audit(session, "customer.lookup")
    assert event.outcome == "denied" and event.reason == "not_found" and event.customer_id is None


@pytest.mark.parametrize("by", ["first_name", "external_id", "birth_date"])
def test_a_search_by_anything_else_is_refused(runtime, by):
    with pytest.raises(counter.InvalidSearch), transaction(runtime.engine) as s:
        counter.find_customer(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=STORE,
            by=by,
            value="Erika",
        )


def test_an_erased_customer_is_not_found(runtime, session):
    from vault.dsr import erasure

    c = _customer(session, runtime, phone="+49 221 5550999")
    with transaction(runtime.engine) as s:
        erasure.erase(
            session=s, customer_id=c.id, by=Caller("cli"), notary=erasure.Notary.of(runtime)
        )
    with pytest.raises(CustomerNotFound), transaction(runtime.engine) as s:
        counter.find_customer(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=STORE,
            by="phone",
            value="+49 221 5550999",
        )


# --- the card -------------------------------------------------------------------------------


def _card(runtime, who, customer_id):
    with transaction(runtime.engine) as s:
        return counter.customer_card(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=who,
            customer_id=customer_id,
        )


def test_the_card_shows_only_what_the_roles_purposes_may_use(runtime, session):
    c = _customer(session, runtime, loyalty_points=420, street="Venloer Str. 1")
    store_card = _card(runtime, STORE, c.id)
    shown = {v.attribute: v.value for v in store_card.values}
    # loyalty_programme: first_name, last_name, email, loyalty_number, loyalty_points
    assert set(shown) <= set(runtime.policy.purposes["loyalty_programme"].attributes)
    assert shown["loyalty_points"] == 420
    assert "street" not in shown and "birth_date" not in shown and "phone" not in shown
    assert "dietary_restrictions" not in shown
    phone_card = _card(runtime, PHONE, c.id)
    assert {v.attribute for v in phone_card.values} >= {"street", "phone"}
    assert "dietary_restrictions" not in {v.attribute for v in phone_card.values}
    # each purpose's read is a data.read through the decision, actor staff:<id>
    reads = _audit(session, "data.read")
    assert [(e.purpose, e.outcome) for e in reads] == [("loyalty_programme", "allowed")]
    assert json.loads(reads[0].details) == {"role": "store", "store": "koeln-ehrenfeld"}
    assert len(_audit(session, "staff.customer_viewed")) == 1


def test_a_restricted_customer_shows_no_values(runtime, session):
    from vault.dsr import rights

    c = _customer(session, runtime)
    with transaction(runtime.engine) as s:
        rights.restrict(session=s, customer_id=c.id, reason="accuracy_contested", by=STORE.caller)
    card = _card(runtime, STORE, c.id)
    assert card.values == [] and card.withheld == {"loyalty_programme": "restricted"}


def test_the_card_shows_consent_state_with_its_history(runtime, session):
    c = _customer(session, runtime)
    factories.record_consent(session, runtime, c.id, "personalised_offers", "granted")
    factories.record_consent(session, runtime, c.id, "personalised_offers", "withdrawn")
    card = _card(runtime, STORE, c.id)
    offers = next(p for p in card.consents if p.id == "personalised_offers")
    assert offers.status == "withdrawn"
    assert [h.status for h in offers.history] == ["withdrawn", "granted"]  # newest first
    assert {p.id for p in card.consents} == {
        p.id for p in runtime.policy.purposes.values() if p.needs_consent
    }
    # preferences: one entry per purpose with contact channels; none granted here, so no forms
    assert [pp.id for pp in card.preferences] == [
        p.id for p in runtime.policy.purposes.values() if p.contact_channels
    ]
    assert not any(pp.applicable for pp in card.preferences)


# --- statements -----------------------------------------------------------------------------


def _record(runtime, who, customer_id, purpose, status="granted", script=None, version=None):
    with transaction(runtime.engine) as s:
        return counter.record_statement(
            session=s,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            envelope=runtime.envelope,
            counter=who,
            customer_id=customer_id,
            purpose=purpose,
            status=status,
            script_id=script,
            script_version=version,
            language="de",
        )


def test_a_store_grant_carries_staff_store_and_script_version(runtime, session):
    c = _customer(session, runtime)
    result = _record(
        runtime, STORE, c.id, "personalised_offers", script="offers_counter", version=1
    )
    assert result.applied and result.receipt
    session.rollback()
    event = session.execute(
        select(ConsentEvent).where(ConsentEvent.id == result.event.id)
    ).scalar_one()
    assert event.channel == "store" and event.method == "in_person"
    assert event.recorded_by == "staff:stkoeln" and event.actor == "customer"
    assert event.evidence == {
        "staff_id": "stkoeln",
        "store_id": "koeln-ehrenfeld",
        "script_version": "offers_counter.v1",
        "language": "de",
    }
    [audit] = _audit(session, "consent.recorded")
    assert audit.customer_id == c.id


def test_a_store_grant_of_a_double_opt_in_purpose_mails_the_confirmation(runtime, session):
    c = _customer(session, runtime)
    result = _record(runtime, STORE, c.id, "newsletter", script="newsletter_counter", version=2)
    assert result.state.status == "pending_confirmation"
    assert result.confirmation_token is None and result.confirmation_delivery == "mail"
    session.rollback()
    mails = session.execute(select(MailMessage).where(MailMessage.customer_id == c.id)).scalars()
    assert [m.template for m in mails] == ["doi_confirmation"]


def test_a_phone_grant_has_no_store(runtime, session):
    c = _customer(session, runtime)
    result = _record(
        runtime, PHONE, c.id, "personalised_offers", script="newsletter_phone", version=3
    )
    session.rollback()
    event = session.execute(
        select(ConsentEvent).where(ConsentEvent.id == result.event.id)
    ).scalar_one()
    assert event.channel == "call_center" and event.method == "phone"
    assert (
        "store_id" not in event.evidence
        and event.evidence["script_version"] == "newsletter_phone.v3"
    )


@pytest.mark.parametrize(
    ("who", "purpose", "script", "version", "error"),
    [
        (STORE, "personalised_offers", None, None, counter.ScriptRequired),
        (STORE, "personalised_offers", "newsletter_phone", 3, counter.ScriptNotApplicable),
        (STORE, "third_party_ads", "offers_counter", 1, counter.ScriptNotApplicable),
        (STORE, "personalised_offers", "offers_counter", 0, counter.ScriptOutdated),
        (PHONE, "newsletter", "newsletter_phone", 2, counter.ScriptOutdated),
        (STORE, "personalised_offers", "nope", 1, counter.ScriptNotApplicable),
    ],
)
def test_a_grant_needs_the_current_script_of_its_touchpoint(
    runtime, session, who, purpose, script, version, error
):
    c = _customer(session, runtime)
    with pytest.raises(error):
        _record(runtime, who, c.id, purpose, script=script, version=version)
    session.rollback()
    assert (
        session.execute(select(ConsentEvent).where(ConsentEvent.customer_id == c.id)).first()
        is None
    )


def test_a_withdrawal_needs_no_script_and_a_status_must_be_a_statement(runtime, session):
    c = _customer(session, runtime)
    result = _record(runtime, PHONE, c.id, "personalised_offers", status="withdrawn")
    assert result.state.status == "withdrawn"
    with pytest.raises(counter.InvalidStatement):
        _record(runtime, PHONE, c.id, "personalised_offers", status="confirmed")


# --- link, request --------------------------------------------------------------------------


def test_the_link_mail_goes_to_the_customer_and_its_session_says_staff(runtime, session):
    c = _customer(session, runtime)
    with transaction(runtime.engine) as s:
        mailed = counter.send_link(
            session=s,
            envelope=runtime.envelope,
            settings=runtime.settings,
            counter=PHONE,
            customer_id=c.id,
        )
    assert not hasattr(mailed, "url")
    session.rollback()
    link = session.execute(
        select(SelfserviceLink).where(SelfserviceLink.customer_id == c.id)
    ).scalar_one()
    assert link.origin == "staff:stphone" and link.issued_by == "staff:stphone"
    mail = session.get(MailMessage, mailed.mail_id)
    assert mail.template == "selfservice_link"
    assert len(_audit(session, "selfservice.link_issued", "stphone")) == 1


def test_start_a_request(runtime, session):
    c = _customer(session, runtime)
    with transaction(runtime.engine) as s:
        row = counter.start_request(session=s, counter=STORE, customer_id=c.id, kind="access")
        rid = row.id
    session.rollback()
    req = session.execute(
        select(DataSubjectRequest).where(DataSubjectRequest.id == rid)
    ).scalar_one()
    assert req.created_by == "staff:stkoeln" and req.kind == "access"
    assert len(_audit(session, "dsr.request_received")) == 1
    with pytest.raises(counter.InvalidRequest), transaction(runtime.engine) as s:
        counter.start_request(session=s, counter=STORE, customer_id=c.id, kind="everything")


# --- item 5: "who used my data" -------------------------------------------------------------


def test_who_used_my_data_shows_staff_use_in_plain_words(runtime, session):
    from vault.selfservice import views

    c = _customer(session, runtime, phone="+49 221 5550777")
    with transaction(runtime.engine) as s:
        counter.find_customer(
            session=s,
            envelope=runtime.envelope,
            policy=runtime.policy,
            counter=STORE,
            by="phone",
            value="+49 221 5550777",
        )
    _card(runtime, STORE, c.id)
    _card(runtime, PHONE, c.id)
    session.rollback()
    de = views.activity(session=session, policy=runtime.policy, customer_id=c.id, lang="de")
    en = views.activity(session=session, policy=runtime.policy, customer_id=c.id, lang="en")
    # newest first: the call centre's two reads, the store's read, the store's search
    assert [u.app for u in de] == [
        "Kundenservice am Telefon",
        "Kundenservice am Telefon",
        "Kundenservice, Filiale Köln-Ehrenfeld",
        "Kundenservice, Filiale Köln-Ehrenfeld",
    ]
    assert en[2].app == "customer service, store Köln-Ehrenfeld"
    assert en[2].purpose == "Loyalty card" and "Loyalty card number" in en[2].attributes
    assert de[3].purpose == "hat Ihr Kundenkonto gesucht" and de[3].attributes == ["Telefonnummer"]
    assert "Geburtsdatum" not in {a for u in de for a in u.attributes}
