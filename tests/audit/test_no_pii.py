"""Known customer values go through every door that exists; not one reaches the audit log."""

import json

from sqlalchemy import text

from tests.audit.helpers import seal
from tests.factories import auth_headers

PROFILES = [
    {
        "email": "Zelinda.Quastenberger@example.de",
        "phone": "+49 30 98765432",
        "first_name": "Zelinda",
        "last_name": "Quastenberger",
        "birth_date": "1979-03-14",
        "postal_code": "80331",
        "street": "Quastenweg 17",
        "city": "Zwickelhausen",
    },
    {
        "email": "ottokar.wimmelbrink@example.org",
        "phone": "+49 171 2345678",
        "first_name": "Ottokar",
        "last_name": "Wimmelbrink",
        "birth_date": "1990-11-02",
        "postal_code": "01067",
        "city": "Knusperstedt",
    },
    {
        "email": "hildegunde.pfropf@example.com",
        "first_name": "Hildegunde",
        "last_name": "Pfropf",
        "birth_date": "1955-07-30",
        "postal_code": "20095",
    },
]
RECTIFIED = "Quastenberger-Wimmelbrink"
EXTERNAL_ID = "CRM-ZQ-445566"


def _needles(profile: dict) -> set[str]:
    out: set[str] = set()
    for name, value in profile.items():
        v = str(value).lower()
        out.add(v)
        if name == "email":
            out.add(v.split("@")[0])
        if name == "phone":
            digits = "".join(c for c in v if c.isdigit())
            out |= {digits, "+" + digits, digits[2:]}
        if name == "birth_date":
            out.add(v.replace("-", ""))
    return out


def test_audit_log_holds_no_customer_values(client, session, runtime):
    writer = auth_headers(session, runtime, "customers:write", "consent:write")
    reader = auth_headers(
        session, runtime, "data:read", purposes=["personalised_offers", "analytics"]
    )
    auditor = auth_headers(session, runtime, "audit:read")

    ids = []
    for i, profile in enumerate(PROFILES):
        body = {"attributes": profile}
        if i == 0:
            body["external_id"] = EXTERNAL_ID
        r = client.post("/v1/customers", json=body, headers=writer)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = client.patch(
        f"/v1/customers/{ids[0]}", json={"attributes": {"last_name": RECTIFIED}}, headers=writer
    )
    assert r.status_code == 200
    for attribute, value in [("email", PROFILES[1]["email"]), ("external_id", EXTERNAL_ID)]:
        r = client.post(
            "/v1/customers/lookup", json={"attribute": attribute, "value": value}, headers=writer
        )
        assert r.status_code == 200
    for cid, status in zip(ids, ["granted", "granted", "refused"], strict=True):
        r = client.post(
            f"/v1/customers/{cid}/consents",
            json={"purpose": "personalised_offers", "status": status, "channel": "web"},
            headers=writer,
        )
        assert r.status_code == 201, r.text
    released = []
    for cid in ids:
        for purpose in ("personalised_offers", "analytics", "newsletter"):
            r = client.get(f"/v1/customers/{cid}/data", params={"purpose": purpose}, headers=reader)
            assert r.status_code in (200, 403), r.text
            if r.status_code == 200:
                released.append(r.json())
    assert any(d["attributes"].get("email") == PROFILES[0]["email"].lower() for d in released)
    r = client.get(
        "/v1/purposes/personalised_offers/audience",
        params={"contact_channel": "email"},
        headers=reader,
    )
    assert r.status_code == 200 and len(r.text.splitlines()) == 2
    r = client.get("/v1/purposes/analytics/audience", headers=reader)
    assert r.status_code == 200
    assert client.get("/v1/audit/events", headers=auditor).status_code == 200
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True
    seal(runtime)

    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_event")).mappings().all()
    actions = {(r["action"], r["outcome"]) for r in rows}
    assert {("data.read", "allowed"), ("data.read", "denied"), ("audit.read", "success")} <= actions
    assert any(a == "data.export" for a, _ in actions)
    names = {a for a, _ in actions}
    assert {"customer.created", "customer.rectified", "customer.lookup"} <= names

    needles = set().union(*(_needles(p) for p in PROFILES)) | {
        RECTIFIED.lower(),
        EXTERNAL_ID.lower(),
    }
    # Digit-only needles could occur by chance inside hex ids and hashes: look for those only
    # in the columns that hold names, codes and details.
    digits_only = {n for n in needles if n.replace("+", "").isdigit()}
    for row in rows:
        every = " ".join(str(v) for k, v in row.items() if k != "hash").lower()
        named = " ".join(
            str(row[k])
            for k in ("action", "purpose", "attributes", "reason", "details", "actor_id")
        ).lower()
        for needle in needles - digits_only:
            assert needle not in every, (needle, row["action"])
        for needle in digits_only:
            assert needle not in named, (needle, row["action"])
        if row["details"]:
            assert isinstance(json.loads(row["details"]), dict)
