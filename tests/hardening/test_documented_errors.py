"""Every documented error is reachable: for each operation in the OpenAPI document and each 4xx
status it documents, a recipe makes a request that gets exactly that status and error code.

A recipe is a function of a :class:`Call` (the operation, a client, a database with a few rows)
that makes one or more requests and checks the last with :func:`expect`. Generic recipes cover
what many operations share (no token, wrong scope, malformed input, a too-large body, an
unknown or an erased id); ``SPECIFIC`` holds the rest, keyed by (method, path, status), and wins
over a generic one. A documented status without a recipe fails
``test_every_documented_error_has_a_recipe``: so a new route or a new documented error needs a
recipe here, and a status no recipe can reach is a documentation bug to fix in the route.

To add one (e.g. 429 for a rate limit): write ``def token_rate_limited(x: Call) -> None`` that
makes requests until the limit answers, ending with ``expect(r, 429, "rate_limited")``, and put
it in ``SPECIFIC`` under ``("POST", "/v1/oauth/token", 429)``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pytest
from sqlalchemy import false
from sqlmodel import select

from tests.factories import create_client, create_customer, record_consent, token, unique_email
from vault.auth import service as auth_service
from vault.auth.scopes import Scope
from vault.crypto.unsubscribe import UnsubscribeTokens
from vault.openapi import generate

DOC = json.loads(generate())
MAX_BODY = 4096  # small body caps, so the 413 recipes need not send megabytes
MAX_IMPORT_BODY = 8192
MAX_IMPORT_LINES = 3


def documented_errors() -> list[tuple[str, str, int]]:
    return sorted(
        (method.upper(), path, int(status))
        for path, ops in DOC["paths"].items()
        for method, op in ops.items()
        for status in op["responses"]
        if status.startswith("4")
    )


def expect(r, status: int, code: str) -> None:
    assert r.status_code == status, f"wanted {status} {code}, got {r.status_code}: {r.text[:300]}"
    assert r.json()["error"] == code, r.text[:300]


@dataclass
class Call:
    """One operation, and what a recipe needs to call it."""

    method: str
    path: str
    client: Any
    session: Any
    runtime: Any
    app_client: Any  # every scope, every purpose
    monkeypatch: Any = None
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def op(self) -> dict[str, Any]:
        return DOC["paths"][self.path][self.method.lower()]

    @property
    def scopes(self) -> list[str] | None:
        """The scopes the operation declares, None if it needs no token."""
        if "security" not in self.op:
            return None
        return sorted({s for req in self.op["security"] for s in req.get("client_credentials", [])})

    @property
    def id_params(self) -> list[str]:
        """The path parameters that name a row (and so can be unknown)."""
        return [n for n in NOT_FOUND_CODE if "{" + n + "}" in self.path]

    @property
    def body_type(self) -> str | None:
        content = self.op.get("requestBody", {}).get("content", {})
        return next(iter(content), None)

    def bearer(self, *scopes: str) -> dict[str, str]:
        scope = " ".join(scopes) or None
        return {"Authorization": f"Bearer {token(self.runtime, self.app_client, scope)}"}

    @cached_property
    def customer(self) -> str:
        return str(create_customer(self.session, self.runtime).id)

    def erased_customer(self) -> str:
        cid = str(create_customer(self.session, self.runtime).id)
        r = self.client.delete(f"/v1/customers/{cid}", headers=self.bearer("dsr:execute"))
        assert r.status_code == 204, r.text
        return cid

    @cached_property
    def target_client(self) -> str:
        """An app client (audit:read) for the admin routes to act on."""
        c, _ = create_client(self.session, self.runtime, scopes=["audit:read"])
        return c.id

    @cached_property
    def webhook(self) -> str:
        r = self.client.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["consent.withdrawn"]},
            headers=self.bearer("webhooks:manage", "consent:read"),
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    @cached_property
    def dsr_request(self) -> str:
        r = self.client.post(
            "/v1/dsr/requests",
            json={"customer_id": self.customer, "kind": "access"},
            headers=self.bearer("dsr:execute"),
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def unsubscribe_token(self, customer_id: str | None = None) -> str:
        """A one-click unsubscribe token for a customer (a new one with a granted consent)."""
        if customer_id is None:
            customer_id = str(create_customer(self.session, self.runtime).id)
            record_consent(self.session, self.runtime, uuid.UUID(customer_id), "newsletter")
        tokens = UnsubscribeTokens(self.runtime.envelope.keys.index_key)
        return tokens.make(uuid.UUID(customer_id), "newsletter")

    def url(self, **ids: str) -> str:
        defaults = {
            "token": lambda: self.unsubscribe_token(),
            "customer_id": lambda: self.customer,
            "webhook_id": lambda: self.webhook,
            "request_uuid": lambda: self.dsr_request,
            "client_id": lambda: self.target_client,
            "purpose": lambda: "personalised_offers",
        }
        values = {**self.ids, **ids}
        out = self.path
        for name, make in defaults.items():
            if "{" + name + "}" in out:
                out = out.replace("{" + name + "}", values[name] if name in values else make())
        return out

    def auth(self) -> dict[str, str]:
        """A bearer token with the scopes the operation declares (none if it needs none)."""
        return self.bearer(*self.scopes) if self.scopes is not None else {}

    def call(self, *, auth: dict[str, str] | None = None, url: str | None = None, **kw):
        """The operation with a valid request (``VALID``), changed by ``kw``; ``auth`` replaces
        the default token, ``content`` replaces the valid body."""
        request = VALID.get((self.method, self.path), lambda x: {})(self)
        if "content" in kw:
            request = {k: v for k, v in request.items() if k not in ("json", "data", "content")}
        request.update(kw)
        headers = {**(self.auth() if auth is None else auth), **request.pop("headers", {})}
        return self.client.request(self.method, url or self.url(), headers=headers, **request)


# --- valid requests: what an operation needs to get past validation -------------------------

VALID: dict[tuple[str, str], Callable[[Call], dict[str, Any]]] = {
    ("POST", "/v1/oauth/token"): lambda x: {"data": {"grant_type": "client_credentials"}},
    ("POST", "/v1/clients"): lambda x: {"json": {"name": "n", "scopes": ["audit:read"]}},
    ("POST", "/v1/customers"): lambda x: {"json": {"attributes": {"email": unique_email()}}},
    ("PATCH", "/v1/customers/{customer_id}"): lambda x: {
        "json": {"attributes": {"first_name": "Erika"}}
    },
    ("POST", "/v1/customers/lookup"): lambda x: {
        "json": {"attribute": "email", "value": unique_email()}
    },
    ("POST", "/v1/customers/import"): lambda x: {
        "content": b"{}\n",
        "headers": {"content-type": "application/x-ndjson"},
    },
    ("POST", "/v1/customers/{customer_id}/consents"): lambda x: {
        "json": {"purpose": "personalised_offers", "status": "granted", "channel": "web"}
    },
    ("POST", "/v1/consents/confirm"): lambda x: {"json": {"token": "x" * 32}},
    ("PATCH", "/v1/customers/{customer_id}/preferences"): lambda x: {
        "json": {"frequency": {"personalised_offers": "monthly"}, "channel": "web"}
    },
    ("POST", "/v1/contacts"): lambda x: {
        "content": b"{}\n",
        "headers": {"content-type": "application/x-ndjson"},
    },
    ("GET", "/v1/customers/{customer_id}/data"): lambda x: {
        "params": {"purpose": "order_fulfilment"}
    },
    ("POST", "/v1/customers/{customer_id}/legal-hold"): lambda x: {
        "json": {"reason": "tax_retention", "note": "Betriebsprüfung 2026"}
    },
    ("DELETE", "/v1/customers/{customer_id}/legal-hold"): lambda x: {
        "json": {"reason": "retention_period_ended"}
    },
    ("POST", "/v1/customers/{customer_id}/objection"): lambda x: {
        "json": {"scope": "direct_marketing"}
    },
    ("DELETE", "/v1/customers/{customer_id}/objection"): lambda x: {
        "json": {"scope": "direct_marketing"}
    },
    ("POST", "/v1/dsr/requests"): lambda x: {"json": {"customer_id": x.customer, "kind": "access"}},
    ("POST", "/v1/dsr/requests/{request_uuid}/close"): lambda x: {"json": {"status": "completed"}},
    ("POST", "/v1/dsr/requests/{request_uuid}/extension"): lambda x: {
        "json": {"months": 1, "reason": "complexity", "note": "many systems to search"}
    },
    ("POST", "/unsubscribe/{token}"): lambda x: {"data": {"List-Unsubscribe": "One-Click"}},
    ("POST", "/v1/webhooks"): lambda x: {
        "json": {"url": "http://127.0.0.1:9/hook", "events": ["consent.withdrawn"]}
    },
}

NOT_FOUND_CODE = {
    "customer_id": "customer_not_found",
    "webhook_id": "webhook_not_found",
    "request_uuid": "dsr_request_not_found",
    "client_id": "client_not_found",
}


# --- generic recipes ------------------------------------------------------------------------


def no_token(x: Call) -> None:
    expect(x.call(auth={}), 401, "not_authenticated")


def wrong_scope(x: Call) -> None:
    other = next(s for s in ("selfservice:issue", "audit:read") if s not in (x.scopes or []))
    expect(x.call(auth=x.bearer(other)), 403, "insufficient_scope")


def _bad_value(schema: dict[str, Any]) -> str | None:
    """A query value this parameter schema refuses, if there is an obvious one."""
    for s in [schema, *schema.get("anyOf", [])]:
        if s.get("type") == "integer" or s.get("format") in ("uuid", "date-time"):
            return "not-a-value"
        if "enum" in s or "pattern" in s:
            return "!"
        if "maxLength" in s:
            return "x" * (s["maxLength"] + 1)
    return None


def malformed(x: Call) -> None:
    """A body that is not JSON (or lacks the form's required field), else a bad parameter."""
    if x.body_type is not None:
        r = x.call(content=b"{", headers={"content-type": x.body_type})
    elif x.id_params:
        r = x.call(url=x.url(**dict.fromkeys(x.id_params, "not-a-uuid")))
    else:
        params = {
            p["name"]: _bad_value(p["schema"])
            for p in x.op.get("parameters", [])
            if p["in"] == "query" and _bad_value(p["schema"]) is not None
        }
        assert params, "no parameter to get wrong: give this operation a specific 422 recipe"
        name, value = next(iter(params.items()))
        r = x.call(params={name: value})
    expect(r, 422, "validation_error")


def too_large(x: Call) -> None:
    limit = MAX_IMPORT_BODY if x.path in ("/v1/customers/import", "/v1/contacts") else MAX_BODY
    r = x.call(content=b" " * (limit + 1), headers={"content-type": x.body_type})
    expect(r, 413, "payload_too_large")


def headers_too_large(x: Call) -> None:
    from vault.http import MAX_HEADER_BYTES

    expect(x.call(headers={"x-fill": "a" * MAX_HEADER_BYTES}), 431, "request_headers_too_large")


def unknown_id(x: Call) -> None:
    name = x.id_params[0]
    unknown = auth_service.new_client_id() if name == "client_id" else str(uuid.uuid4())
    expect(x.call(url=x.url(**{name: unknown})), 404, NOT_FOUND_CODE[name])


def erased(x: Call) -> None:
    expect(x.call(url=x.url(customer_id=x.erased_customer())), 410, "customer_erased")


def generic(x: Call, status: int) -> Callable[[Call], None] | None:
    if status == 401 and x.scopes is not None:
        return no_token
    if status == 403 and x.scopes is not None:
        return wrong_scope
    if status == 422:
        return malformed
    if status == 413 and x.body_type is not None:
        return too_large
    if status == 404 and x.id_params:
        return unknown_id
    if status == 410 and "{customer_id}" in x.path:
        return erased
    if status == 431:
        return headers_too_large
    return None


# --- specific recipes -----------------------------------------------------------------------


def token_unsupported_grant(x: Call) -> None:
    expect(x.call(data={"grant_type": "password"}), 400, "unsupported_grant_type")


def token_wrong_secret(x: Call) -> None:
    form = {"grant_type": "client_credentials", "client_id": x.app_client.id}
    expect(x.call(data={**form, "client_secret": "wrong"}), 401, "invalid_client")


def email_taken(x: Call) -> None:
    email = unique_email()
    create_customer(x.session, x.runtime, email=email)
    expect(x.call(json={"attributes": {"email": email}}), 409, "duplicate_value")


def never_erased(x: Call) -> None:
    expect(x.call(url=x.url(customer_id=x.customer)), 404, "erasure_certificate_not_found")


def legal_hold(x: Call) -> None:
    r = x.client.post(
        f"/v1/customers/{x.customer}/legal-hold",
        json={"reason": "tax_retention"},
        headers=x.bearer("dsr:execute"),
    )
    assert r.status_code == 200, r.text
    expect(x.call(), 409, "legal_hold")


def idempotency_race(x: Call) -> None:
    """Two requests with one Idempotency-Key, the second checking before the first commits:
    the race, made deterministic by hiding the first one's committed key from the check."""
    from vault.consent import store as consent_store

    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert x.call(headers=key).status_code in (200, 201)
    hidden = consent_store._READ_IDEMPOTENCY.where(false())
    x.monkeypatch.setattr(consent_store, "_READ_IDEMPOTENCY", hidden)
    other = str(create_customer(x.session, x.runtime).id)
    expect(x.call(headers=key, url=x.url(customer_id=other)), 409, "idempotency_key_in_use")


def nobody_has_it(x: Call) -> None:
    expect(x.call(), 404, "customer_not_found")


def dsr_for_unknown_customer(x: Call) -> None:
    r = x.call(json={"customer_id": str(uuid.uuid4()), "kind": "access"})
    expect(r, 404, "customer_not_found")


def dsr_closed(x: Call) -> None:
    r = x.client.post(
        f"/v1/dsr/requests/{x.dsr_request}/close",
        json={"status": "completed"},
        headers=x.bearer("dsr:execute"),
    )
    assert r.status_code == 200, r.text
    expect(x.call(), 409, "dsr_request_closed")


def webhook_events_not_readable(x: Call) -> None:
    """Both 403s: the scope is missing, or the scope is there but not one that reads the events
    asked for (webhooks:manage alone reads nothing)."""
    wrong_scope(x)
    expect(x.call(auth=x.bearer("webhooks:manage")), 403, "event_type_not_permitted")


def note_after_erasure(x: Call) -> None:
    """A request of a customer erased since keeps codes only: a note is refused."""
    cid = str(create_customer(x.session, x.runtime).id)
    staff = x.bearer("dsr:execute")
    r = x.client.post(
        "/v1/dsr/requests", json={"customer_id": cid, "kind": "access"}, headers=staff
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert x.client.delete(f"/v1/customers/{cid}", headers=staff).status_code == 204
    body = {"reason": "complexity", "months": 1, "status": "rejected", "note": "see letter"}
    if x.path.endswith("/close"):
        body["reason"] = "identity_not_verified"
    expect(x.call(url=x.url(request_uuid=rid), json=body), 410, "customer_erased")


def webhook_disabled(x: Call) -> None:
    r = x.client.post(f"/v1/webhooks/{x.webhook}/disable", headers=x.bearer("webhooks:manage"))
    assert r.status_code == 200, r.text
    expect(x.call(), 409, "webhook_disabled")


def client_deleted(x: Call) -> None:
    admin = x.bearer("admin")
    assert x.client.delete(f"/v1/clients/{x.target_client}", headers=admin).status_code == 204
    expect(x.call(), 409, "client_deleted")


def _pending_confirmation(x: Call, headers: dict[str, str] | None = None) -> str:
    """A double opt-in token handed to the recording app (it holds consent:confirm and sends
    its own mail); recorded by another client than the one ``x.call`` confirms with, unless
    ``headers`` say otherwise."""
    if headers is None:
        recorder, _ = create_client(
            x.session, x.runtime, scopes=["consent:write", "consent:confirm"]
        )
        headers = {"Authorization": f"Bearer {token(x.runtime, recorder)}"}
    r = x.client.post(
        f"/v1/customers/{x.customer}/consents",
        json={"purpose": "newsletter", "status": "granted", "channel": "web"},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["confirmation_token"], r.text
    return r.json()["confirmation_token"]


def confirm_by_recorder(x: Call) -> None:
    """Both 403s: the scope is missing, or the caller is the client that recorded the grant."""
    wrong_scope(x)
    body = {"token": _pending_confirmation(x, x.bearer("consent:write", "consent:confirm"))}
    expect(x.call(json=body), 403, "confirmation_by_recorder")


def confirm_unknown_token(x: Call) -> None:
    expect(x.call(json={"token": uuid.uuid4().hex}), 404, "confirmation_token_not_found")


def confirm_twice(x: Call) -> None:
    body = {"token": _pending_confirmation(x)}
    assert x.call(json=body).status_code == 200
    expect(x.call(json=body), 409, "confirmation_token_used")


def confirm_expired(x: Call) -> None:
    from vault.consent.models import ConsentConfirmation

    body = {"token": _pending_confirmation(x)}
    for conf in x.session.exec(select(ConsentConfirmation)).all():
        conf.expires_at = conf.expires_at.replace(year=2000)
    x.session.commit()
    expect(x.call(json=body), 410, "confirmation_token_expired")


def import_too_many_lines(x: Call) -> None:
    r = x.call(content=b"{}\n" * (MAX_IMPORT_LINES + 1), headers={"content-type": x.body_type})
    expect(r, 422, "too_many_lines")


def import_in_progress(x: Call) -> None:
    """The client's slot is taken, as while another import of it streams (the real race:
    tests/hardening/test_edge_server.py)."""
    from vault.customers import importer

    with importer.one_import_per_client(x.app_client.id):
        expect(x.call(), 409, "import_in_progress")


def token_form_too_large(x: Call) -> None:
    """Both 413s of a form: too many bytes, and (under the byte cap) too many fields."""
    from vault.http import MAX_FORM_FIELDS

    too_large(x)
    fields = "&".join(["a="] * (MAX_FORM_FIELDS + 1))  # 3 KiB: under MAX_BODY
    expect(
        x.call(content=fields.encode(), headers={"content-type": x.body_type}),
        413,
        "too_many_fields",
    )


def _until_throttled(send: Callable[[], Any], tries: int = 200):
    for _ in range(tries):
        r = send()
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) > 0
            return r
    raise AssertionError(f"no 429 after {tries} requests")


def token_rate_limited(x: Call) -> None:
    form = {"grant_type": "client_credentials", "client_id": x.app_client.id}
    r = _until_throttled(lambda: x.call(data={**form, "client_secret": "wrong"}))
    expect(r, 429, "rate_limited")


def links_rate_limited(x: Call) -> None:
    url = x.url()  # one customer
    expect(_until_throttled(lambda: x.call(url=url)), 429, "rate_limited")


def unsubscribe_forged(x: Call) -> None:
    expect(x.call(url="/unsubscribe/AAAAforged"), 404, "unsubscribe_link_invalid")


def unsubscribe_erased(x: Call) -> None:
    url = f"/unsubscribe/{x.unsubscribe_token(x.erased_customer())}"
    expect(x.call(url=url), 410, "customer_erased")


def unsubscribe_without_one_click(x: Call) -> None:
    expect(x.call(data={"List-Unsubscribe": "yes"}), 422, "one_click_required")


def link_without_email(x: Call) -> None:
    from vault.customers import service as customers_service

    customer, _ = customers_service.create_customer(
        session=x.session,
        envelope=x.runtime.envelope,
        policy=x.runtime.policy,
        attributes={"first_name": "Otto"},
    )
    x.session.commit()
    expect(x.call(url=x.url(customer_id=str(customer.id))), 409, "customer_has_no_email")


SPECIFIC: dict[tuple[str, str, int], Callable[[Call], None]] = {
    ("POST", "/unsubscribe/{token}", 404): unsubscribe_forged,
    ("POST", "/unsubscribe/{token}", 410): unsubscribe_erased,
    ("POST", "/unsubscribe/{token}", 422): unsubscribe_without_one_click,
    ("POST", "/unsubscribe/{token}", 413): token_form_too_large,
    ("POST", "/v1/oauth/token", 429): token_rate_limited,
    ("POST", "/v1/customers/{customer_id}/selfservice-link", 429): links_rate_limited,
    ("POST", "/v1/customers/{customer_id}/selfservice-link", 409): link_without_email,
    ("POST", "/v1/oauth/token", 400): token_unsupported_grant,
    ("POST", "/v1/oauth/token", 401): token_wrong_secret,
    ("POST", "/v1/customers", 409): email_taken,
    ("PATCH", "/v1/customers/{customer_id}", 409): email_taken,
    ("POST", "/v1/customers/lookup", 404): nobody_has_it,
    ("POST", "/v1/customers/import", 422): import_too_many_lines,
    ("POST", "/v1/customers/import", 409): import_in_progress,
    ("POST", "/v1/contacts", 422): import_too_many_lines,
    ("POST", "/v1/oauth/token", 413): token_form_too_large,
    ("DELETE", "/v1/customers/{customer_id}", 409): legal_hold,
    ("GET", "/v1/customers/{customer_id}/erasure-certificate", 404): never_erased,
    ("POST", "/v1/customers/{customer_id}/consents", 409): idempotency_race,
    ("PATCH", "/v1/customers/{customer_id}/preferences", 409): idempotency_race,
    ("POST", "/v1/consents/confirm", 403): confirm_by_recorder,
    ("POST", "/v1/consents/confirm", 404): confirm_unknown_token,
    ("POST", "/v1/consents/confirm", 409): confirm_twice,
    ("POST", "/v1/consents/confirm", 410): confirm_expired,
    ("POST", "/v1/dsr/requests", 404): dsr_for_unknown_customer,
    ("POST", "/v1/dsr/requests/{request_uuid}/close", 409): dsr_closed,
    ("POST", "/v1/dsr/requests/{request_uuid}/extension", 409): dsr_closed,
    ("POST", "/v1/webhooks", 403): webhook_events_not_readable,
    ("POST", "/v1/dsr/requests/{request_uuid}/close", 410): note_after_erasure,
    ("POST", "/v1/dsr/requests/{request_uuid}/extension", 410): note_after_erasure,
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret", 409): webhook_disabled,
    ("POST", "/v1/webhooks/{webhook_id}/redeliver", 409): webhook_disabled,
    ("POST", "/v1/clients/{client_id}/disable", 409): client_deleted,
    ("POST", "/v1/clients/{client_id}/enable", 409): client_deleted,
    ("POST", "/v1/clients/{client_id}/rotate-secret", 409): client_deleted,
    ("DELETE", "/v1/clients/{client_id}", 409): client_deleted,
}


def recipe_for(x: Call, status: int) -> Callable[[Call], None] | None:
    return SPECIFIC.get((x.method, x.path, status)) or generic(x, status)


def _shape(method: str, path: str) -> Call:
    return Call(method, path, None, None, None, None)


# --- the tests ------------------------------------------------------------------------------


def test_every_documented_error_has_a_recipe():
    missing = [
        f"{m} {p} -> {s}" for m, p, s in documented_errors() if not recipe_for(_shape(m, p), s)
    ]
    assert not missing, "documented errors no recipe reaches (add one, or fix the route):\n" + (
        "\n".join(missing)
    )


def test_every_specific_recipe_is_for_a_documented_error():
    stale = sorted(set(SPECIFIC) - set(documented_errors()))
    assert not stale, f"recipes for errors the document does not list: {stale}"


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "max_body_bytes": MAX_BODY,
            "max_import_bytes": MAX_IMPORT_BODY,
            "max_import_lines": MAX_IMPORT_LINES,
        }
    )


OPERATIONS = sorted({(m, p) for m, p, _ in documented_errors()})


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_documented_errors_are_reachable(method, path, client, session, runtime, monkeypatch):
    app_client, _ = create_client(
        session, runtime, scopes=[s.value for s in Scope], purposes=sorted(runtime.policy.purposes)
    )
    failures = []
    for m, p, status in documented_errors():
        if (m, p) != (method, path):
            continue
        x = Call(method, path, client, session, runtime, app_client, monkeypatch=monkeypatch)
        recipe = recipe_for(x, status)
        if recipe is None:
            continue  # test_every_documented_error_has_a_recipe names it
        try:
            recipe(x)
        except AssertionError as exc:
            failures.append(f"{status} by {recipe.__name__}: {exc}")
        monkeypatch.undo()
    assert not failures, f"{method} {path}:\n" + "\n".join(failures)
