"""The audience export contains exactly the customers the decision function allows."""

import orjson
import pytest
from sqlalchemy import func, select

from bench.seed import profile, seed
from tests.factories import auth_headers
from vault.audit.models import AuditEvent
from vault.consent import rules as consent_rules
from vault.consent.models import ConsentState
from vault.customers.models import Customer
from vault.policy.decision import decide
from vault.policy.values import reduce

STATUSES = ["granted", "confirmed", "pending_confirmation", "withdrawn", "refused", None]
AGES = [10, 400, 800]  # days since the grant: personalised_offers expires after 365


def plan(i: int) -> dict:
    out = {}
    st = STATUSES[i % len(STATUSES)]
    if st is not None:
        age = AGES[(i // len(STATUSES)) % len(AGES)]
        out["personalised_offers"] = (st, 1, age)
        out["newsletter"] = (st, 1, age)
    return out


def customer_status(i: int) -> str:
    return "restricted" if i % 17 == 0 else "active"


def customer_objections(i: int) -> str:
    return {0: "direct_marketing", 1: "analytics"}.get(i % 11, "")


def _expected(session, runtime, ids, purpose, requested=None):
    """Ask the decision function about every seeded customer."""
    out = {}
    rows = session.execute(select(Customer)).scalars().all()
    states = {
        (s.customer_id, s.purpose): s for s in session.execute(select(ConsentState)).scalars()
    }
    from vault.db import utcnow

    now = utcnow()
    for c in rows:
        d = decide(
            purpose=purpose,
            client_purposes={purpose.id},
            customer_status=c.status,
            objections=c.objection_set,
            consent_status=consent_rules.effective_status(
                states.get((c.id, purpose.id)), purpose, now
            ),
            requested=requested,
        )
        if d.allowed:
            i = ids.index(c.id)
            plain = profile(i)
            out[str(c.id)] = {
                n: reduce(plain[n], purpose.reduce.get(n)) for n in d.attributes if n in plain
            }
    session.rollback()
    return out


@pytest.mark.parametrize(
    ("purpose_id", "requested"),
    [
        ("personalised_offers", None),
        ("newsletter", "email"),
        ("analytics", None),
        ("order_fulfilment", "email,postal_code"),
    ],
)
def test_audience_is_exactly_the_allowed_customers(client, session, runtime, purpose_id, requested):
    n = 10_000 if purpose_id == "personalised_offers" else 1_500
    ids = seed(runtime, n, states=plan, status=customer_status, objections=customer_objections)
    purpose = runtime.policy.purposes[purpose_id]
    headers = auth_headers(session, runtime, "data:read", purposes=[purpose_id])
    params = {"attributes": requested} if requested else {}
    if purpose_id == "personalised_offers":  # two contact channels: the export names one
        params["contact_channel"] = "email"
    r = client.get(f"/v1/purposes/{purpose_id}/audience", params=params, headers=headers)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/x-ndjson")
    got = {}
    for line in r.content.splitlines():
        doc = orjson.loads(line)
        got[doc["customer_id"]] = doc["attributes"]
    expected = _expected(
        session, runtime, ids, purpose, requested.split(",") if requested else None
    )
    assert got == expected
    assert 0 < len(got) < n  # mixed states: some in, some out
    if purpose_id == "analytics":
        sample = next(iter(got.values()))
        assert len(sample["birth_date"]) == 4 and len(sample["postal_code"]) == 2
    # every exported customer is traceable in the audit log
    exported = session.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "data.export")
    ).scalar_one()
    session.rollback()
    assert exported == len(got)


def test_audience_needs_registration_and_permitted_attributes(client, session, runtime):
    seed(runtime, 10, states=plan)
    headers = auth_headers(session, runtime, "data:read", purposes=["newsletter"])
    r = client.get(
        "/v1/purposes/personalised_offers/audience",
        params={"contact_channel": "email"},
        headers=headers,
    )
    assert r.status_code == 403 and r.json()["error"] == "purpose_not_permitted_for_client"
    r = client.get(
        "/v1/purposes/newsletter/audience", params={"attributes": "phone"}, headers=headers
    )
    assert r.status_code == 403 and r.json()["attributes"] == ["phone"]
    r = client.get("/v1/purposes/nope/audience", headers=headers)
    assert r.status_code == 422 and r.json()["error"] == "unknown_purpose"
    assert client.get("/v1/purposes/newsletter/audience").status_code == 401
    other = auth_headers(session, runtime, "audit:read", purposes=["newsletter"])
    assert client.get("/v1/purposes/newsletter/audience", headers=other).status_code == 403


def test_audience_refuses_unknown_attribute_names_unechoed(client, session, runtime):
    """Found by fuzzing: ``?attributes='@`` reached the audit event and answered 500."""
    headers = auth_headers(session, runtime, "data:read", purposes=["newsletter"])
    for names in ("'@", "email,erika@example.de"):
        r = client.get(
            "/v1/purposes/newsletter/audience", params={"attributes": names}, headers=headers
        )
        assert r.status_code == 422 and r.json()["error"] == "unknown_attribute"
        assert "@" not in r.text
    r = client.get("/v1/purposes/erika@example.de/audience", headers=headers)
    assert r.status_code == 422 and "erika" not in r.text


def test_export_reflects_a_withdrawal_at_once(client, session, runtime):
    ids = seed(runtime, 3, states=lambda i: {"personalised_offers": ("granted", 1, 1)})
    headers = auth_headers(
        session, runtime, "data:read", "consent:write", purposes=["personalised_offers"]
    )
    r = client.post(
        f"/v1/customers/{ids[1]}/consents",
        json={"purpose": "personalised_offers", "status": "withdrawn", "channel": "app"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    r = client.get(
        "/v1/purposes/personalised_offers/audience",
        params={"contact_channel": "email"},
        headers=headers,
    )
    got = [orjson.loads(line)["customer_id"] for line in r.content.splitlines()]
    assert sorted(got) == sorted([str(ids[0]), str(ids[2])])
