"""Issue 10: body caps (413 with and without Content-Length) and the import's own limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from tests import factories
from vault.auth.scopes import Scope
from vault.crypto.unsubscribe import UnsubscribeTokens

# The self-service pages that take a form (not in the OpenAPI document: they are HTML).
PAGE_FORMS = [
    "/me/consents/newsletter",
    "/me/objection",
    "/me/preferences/pause",
    "/me/preferences/newsletter/topics",
    "/me/export",
    "/me/erase",
    "/me/logout",
]


def _path_value(app, name: str) -> str:
    """A path parameter's value: a new id, or for ``{token}`` (one-click unsubscribe, which
    checks its token before it receives the body) a valid token of an unknown customer."""
    if name == "token":
        keys = app.state.runtime.envelope.keys
        return UnsubscribeTokens(keys.index_key).make(uuid.uuid4(), "newsletter")
    return str(uuid.uuid4())


def _body_routes(app) -> list[tuple[str, str, str]]:
    """Every operation of the API that takes a body, path parameters filled in, with the body's
    content type; then the pages."""
    routes = []
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                filled = path
                for p in op.get("parameters", []):
                    if p["in"] == "path":
                        filled = filled.replace("{" + p["name"] + "}", _path_value(app, p["name"]))
                media = next(iter(op["requestBody"]["content"]))
                routes.append((method.upper(), filled, media))
    assert len(routes) >= 17
    return routes + [("POST", p, "application/x-www-form-urlencoded") for p in PAGE_FORMS]


def _chunked(size: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked transfer), ``size`` bytes in pieces."""
    while size > 0:
        yield b"x" * min(size, 256)
        size -= 256


def _assert_413(r, what) -> None:
    assert r.status_code == 413, (what, r.status_code, r.text[:200])
    assert r.json()["error"] == "payload_too_large", what
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"


ALL_SCOPES = tuple(s.value for s in Scope)  # every scope there is, new ones included


def test_every_route_with_a_body_answers_413_past_the_cap(built, session):
    rt, tc = built(max_body_bytes=1024, max_import_bytes=4096)
    # a valid token: a route that needs one receives no body without it (test_edge_gate.py)
    auth = factories.auth_headers(session, rt, *ALL_SCOPES, purposes=list(rt.policy.purposes))
    for method, path, media in _body_routes(tc.app):
        limit = 4096 if path in ("/v1/customers/import", "/v1/contacts") else 1024
        for ct in {media, "application/json", "application/x-www-form-urlencoded"}:
            r = tc.request(
                method, path, content=b"x" * (limit + 1), headers={**auth, "content-type": ct}
            )
            _assert_413(r, (method, path, ct, "content-length"))
        # no Content-Length: caught while the body is read, still 413 (not a 400 parse error)
        h = {**auth, "content-type": media}
        r = tc.request(method, path, content=_chunked(limit + 1), headers=h)
        _assert_413(r, (method, path, media, "chunked"))
        r = tc.request(method, path, content=_chunked(limit), headers=h)
        assert r.status_code != 413, (method, path)


def test_413_is_declared_wherever_a_body_is_taken(app):
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                codes = op["responses"]["413"]["description"].split(", ")
                assert codes[0] == "payload_too_large", (method, path)
                forms = "application/x-www-form-urlencoded" in op["requestBody"]["content"]
                assert ("too_many_fields" in codes) == forms, (method, path)


def test_the_import_has_its_own_larger_cap(built, session):
    rt, tc = built(max_body_bytes=1024, max_import_bytes=4096)
    headers = {
        **factories.auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    line = b'{"attributes": {"last_name": "Gross"}}\n'
    body = line * (3000 // len(line))  # over the general cap, under the import cap
    r = tc.post("/v1/customers/import", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == body.count(b"\n")
    before = _customers(session)
    r = tc.post("/v1/customers/import", content=line * (5000 // len(line)), headers=headers)
    _assert_413(r, "import")
    assert _customers(session) == before


def test_the_default_caps_are_the_documented_ones(client, settings):
    assert settings.max_body_bytes == 1_048_576
    assert settings.max_import_bytes == 67_108_864
    r = client.post(
        "/v1/customers",
        content=b"x" * (settings.max_body_bytes + 1),
        headers={"content-type": "application/json"},
    )
    _assert_413(r, "default")


def _customers(session) -> int:
    from sqlalchemy import func, select

    from vault.customers.models import Customer

    session.rollback()
    return session.execute(select(func.count()).select_from(Customer)).scalar_one()


def _audit_actions(session) -> list[str]:
    from sqlalchemy import select

    from vault.audit.models import AuditEvent

    session.rollback()
    return list(session.execute(select(AuditEvent.action)).scalars())


def test_an_import_line_past_the_length_limit_is_refused_and_not_stored(client, session, runtime):
    from vault.customers.importer import MAX_LINE_BYTES

    headers = {
        **factories.auth_headers(session, runtime, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    good = b'{"attributes": {"last_name": "Kurz"}}'
    long = b'{"attributes": {"last_name": "' + b"L" * MAX_LINE_BYTES + b'"}}'
    r = client.post("/v1/customers/import", content=b"\n".join([good, long, good]), headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 2
    assert [(e["line"], e["error"]) for e in report["errors"]] == [(2, "line_too_long")]
    assert "LLLL" not in r.text
    assert _customers(session) == 2


def test_an_import_past_the_line_count_is_refused_whole(built, session):
    rt, tc = built(max_import_lines=5)
    headers = {
        **factories.auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    line = b'{"attributes": {"last_name": "Viele"}}\n'
    actions = _audit_actions(session)
    r = tc.post("/v1/customers/import", content=line * 6, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "too_many_lines"
    assert "5" in r.json()["detail"]
    assert _customers(session) == 0
    assert _audit_actions(session) == actions
    r = tc.post("/v1/customers/import", content=line * 5, headers=headers)
    assert r.status_code == 200 and r.json()["created"] == 5
