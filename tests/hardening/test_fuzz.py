"""Schemathesis against the app's own OpenAPI document: every operation, valid tokens.

Each operation is called with a bearer token that carries exactly the scope it declares, from a
client registered for every purpose, so requests get past authentication and into the code.
Path parameters are drawn partly from real rows (an active, a restricted and an erased customer,
a webhook, a data-subject request) so the fuzzer reaches more than the 404 branch.

Checks: no 5xx, every status documented, bodies and content types as documented. The run is
seeded and bounded per operation, so CI sees the same examples every time.
"""

from __future__ import annotations

import json
import zlib

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import create_client, create_customer, record_consent, token
from vault.openapi import generate

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
MAX_EXAMPLES = 10  # fuzzed per operation, besides schemathesis' coverage and example cases
SEED = 20261122

# The import body is declared as a string of NDJSON lines: send it as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _seed_rows(client, session, runtime, headers: dict[str, str]) -> dict[str, list[str]]:
    """Real ids for the path parameters, made through the API where that is simplest."""
    active = create_customer(session, runtime)
    record_consent(session, runtime, active.id, "personalised_offers")
    restricted = create_customer(session, runtime)
    erased = create_customer(session, runtime)
    assert client.post(f"/v1/customers/{restricted.id}/restriction", headers=headers).is_success
    assert client.delete(f"/v1/customers/{erased.id}", headers=headers).is_success
    hook = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/vault", "events": ["consent.withdrawn"]},
        headers=headers,
    )
    assert hook.is_success, hook.text
    dsr = client.post(
        "/v1/dsr/requests", json={"customer_id": str(active.id), "kind": "access"}, headers=headers
    )
    assert dsr.is_success, dsr.text
    return {
        "customer_id": [str(c.id) for c in (active, restricted, erased)],
        "webhook_id": [hook.json()["id"]],
        "request_uuid": [dsr.json()["id"]],
        "purpose": sorted(runtime.policy.purposes),
    }


@pytest.fixture
def settings(settings):
    """The suite's settings, with the loopback host allowed for the seeded webhook."""
    return settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})


@pytest.fixture
def fuzz_client(session, runtime):
    """A client with every scope and every purpose; tokens are cut down per operation."""
    from vault.auth.scopes import Scope

    app_client, _ = create_client(
        session, runtime, scopes=[s.value for s in Scope], purposes=sorted(runtime.policy.purposes)
    )
    return app_client


@pytest.fixture
def known(client, session, runtime, fuzz_client) -> dict[str, list[str]]:
    return _seed_rows(
        client, session, runtime, {"Authorization": f"Bearer {token(runtime, fuzz_client)}"}
    )


def _aim(case, known: dict[str, list[str]]) -> None:
    """Point some path parameters at real rows, chosen by the drawn value (so still seeded)."""
    for name, value in (case.path_parameters or {}).items():
        choices = known.get(name)
        if choices:
            pick = zlib.crc32(str(value).encode()) % (len(choices) + 1)
            if pick < len(choices):
                case.path_parameters[name] = choices[pick]


def _bearer_for(case, runtime, fuzz_client) -> dict[str, str]:
    requirements = case.operation.definition.raw.get("security")
    if not requirements:
        return {}
    scopes = sorted({s for req in requirements for s in req.get("client_credentials", [])})
    return {"Authorization": f"Bearer {token(runtime, fuzz_client, ' '.join(scopes) or None)}"}


# The document of the code under test, loaded once; every test calls its own app (fresh database).
schema = schemathesis.openapi.from_dict(
    json.loads(generate()),
    config=schemathesis.Config.from_dict(
        {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True}}
    ),
)


@pytest.mark.slow
@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_holds_its_contract(case, request, app, runtime, fuzz_client):
    if case.path_parameters:
        _aim(case, request.getfixturevalue("known"))
    response = case.call(app=app, headers=_bearer_for(case, runtime, fuzz_client))
    case.validate_response(response, checks=CHECKS)
