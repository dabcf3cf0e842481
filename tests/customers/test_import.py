import json

import orjson
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.factories import auth_headers, create_customer
from vault.cli import app
from vault.consent import rebuild as consent_rebuild
from vault.consent import store as consent_store
from vault.consent.models import ConsentEvent, ConsentState
from vault.customers import service
from vault.customers.models import Customer
from vault.db import utcnow


def ndjson(*docs) -> bytes:
    return b"".join((d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n" for d in docs)


GOOD = {
    "external_id": "LEGACY-1",
    "attributes": {
        "email": "Import.One@Example.de",
        "first_name": "Ida",
        "last_name": "Import",
        "birth_date": "1970-01-02",
        "postal_code": "50667",
        "phone": "0221 1234567",
    },
    "consents": [
        {
            "purpose": "personalised_offers",
            "status": "granted",
            "channel": "store",
            "occurred_at": "2026-01-05T10:00:00+00:00",
            "late_import": True,  # collected long before the import
            "method": "paper_form",
        },
        {
            "purpose": "newsletter",
            "status": "confirmed",
            "channel": "email",
            "occurred_at": "2026-01-06T10:00:00+00:00",
            "late_import": True,
            "method": "legacy_double_opt_in",
        },
    ],
}


@pytest.fixture
def importer_headers(session, runtime):
    return auth_headers(session, runtime, "customers:write", "consent:write")


def _post(client, headers, body):
    return client.post(
        "/v1/customers/import",
        content=body,
        headers={**headers, "content-type": "application/x-ndjson"},
    )


def test_import_keeps_good_lines_and_reports_bad_ones(client, session, runtime, importer_headers):
    create_customer(session, runtime, email="taken@example.de")
    body = ndjson(
        GOOD,
        {"attributes": {"email": "not-an-email"}},
        b"{broken json",
        {"attributes": {"shoe_size": 44}},
        {"attributes": {"email": "TAKEN@example.de"}},
        {"attributes": {"email": "import.one@example.de"}},  # duplicate of line 1
        {
            "attributes": {"email": "two@example.de"},
            "consents": [{"purpose": "order_fulfilment", "status": "granted"}],
        },
        {
            "attributes": {"email": "three@example.de"},
            "consents": [
                {
                    "purpose": "newsletter",
                    "status": "granted",
                    "occurred_at": "2099-01-01T00:00:00+00:00",
                }
            ],
        },
        {"attributes": {"email": "four@example.de", "city": "Köln"}},
    )
    r = _post(client, importer_headers, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["received"] == 9 and report["created"] == 2 and report["rejected"] == 7
    assert report["consents"] == 2
    codes = {e["line"]: e["error"] for e in report["errors"]}
    assert codes == {
        2: "invalid_attribute_value",
        3: "invalid_json",
        4: "unknown_attribute",
        5: "duplicate_value",
        6: "duplicate_value",
        7: "consent_not_applicable",
        8: "occurred_at_in_future",
    }
    assert "not-an-email" not in r.text and "taken@" not in r.text.lower()
    # the imported customer is complete: values, lookup, consents with receipts, audit
    kw = {"session": session, "envelope": runtime.envelope, "policy": runtime.policy}
    cid = service.lookup(**kw, attribute="external_id", value="LEGACY-1")
    assert service.lookup(**kw, attribute="email", value="import.one@example.de") == cid
    values = service.decrypt_values(
        session=session, envelope=runtime.envelope, customer=session.get(Customer, cid)
    )
    assert values["phone"] == "+492211234567" and values["first_name"] == "Ida"
    states = consent_store.effective_states(
        session=session, policy=runtime.policy, customer_id=cid, now=utcnow()
    )
    assert states["newsletter"].status == "granted"  # confirmed double opt-in counts
    events = (
        session.execute(select(ConsentEvent).where(ConsentEvent.customer_id == cid)).scalars().all()
    )
    assert {e.method for e in events} == {"paper_form", "legacy_double_opt_in"}
    assert all(e.receipt.count(".") == 2 for e in events)
    session.rollback()
    rebuild = consent_rebuild.rebuild(session=session, fix=False)
    assert not rebuild.differences
    session.rollback()


def test_imported_customer_is_readable_for_its_purpose(client, session, runtime, importer_headers):
    assert _post(client, importer_headers, ndjson(GOOD)).json()["created"] == 1
    reader = auth_headers(session, runtime, "data:read", purposes=["personalised_offers"])
    cid = service.lookup(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attribute="external_id",
        value="LEGACY-1",
    )
    session.rollback()
    r = client.get(
        f"/v1/customers/{cid}/data", params={"purpose": "personalised_offers"}, headers=reader
    )
    assert r.status_code == 200 and r.json()["attributes"]["birth_date"] == "1970"


def test_import_needs_scopes(client, session, runtime):
    assert _post(client, {}, ndjson(GOOD)).status_code == 401
    wrong = auth_headers(session, runtime, "consent:write")
    assert _post(client, wrong, ndjson(GOOD)).status_code == 403
    no_consent = auth_headers(session, runtime, "customers:write")
    report = _post(client, no_consent, ndjson(GOOD, {"attributes": {"city": "Ulm"}})).json()
    assert report["created"] == 1 and report["errors"][0]["error"] == "insufficient_scope"


def test_import_limits(client, session, runtime, importer_headers):
    long_line = orjson.dumps({"attributes": {"city": "x" * 70_000}})
    report = _post(client, importer_headers, ndjson(long_line)).json()
    assert report["errors"][0]["error"] == "line_too_long"
    runtime_settings = runtime.settings
    too_many = ndjson(*[{"attributes": {"city": "Ulm"}}] * (runtime_settings.max_import_lines + 1))
    r = _post(client, importer_headers, too_many)
    assert r.status_code == 422 and r.json()["error"] == "too_many_lines"


def test_cli_import_with_error_report(tmp_path, settings, runtime, session):
    path = tmp_path / "customers.ndjson"
    path.write_bytes(
        ndjson(GOOD, {"attributes": {"email": "nope"}}, {"attributes": {"city": "Ulm"}})
    )
    errors = tmp_path / "errors.ndjson"
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }
    result = CliRunner().invoke(app, ["import", str(path), "--errors-file", str(errors)], env=env)
    assert result.exit_code == 1  # some lines were rejected
    assert "created 2 customers with 2 consent events, rejected 1" in result.output
    (entry,) = [json.loads(x) for x in errors.read_text().splitlines()]
    assert entry == {
        "line": 2,
        "error": "invalid_attribute_value",
        "detail": "Attribute 'email': not a valid e-mail address.",
        "attribute": "email",
    }
    assert session.execute(select(func.count()).select_from(Customer)).scalar_one() == 2
    assert session.execute(select(func.count()).select_from(ConsentState)).scalar_one() == 2
