"""An unexpected error ends in one place: a 500 with a fixed body, its type logged, nothing else.

Messages of driver errors carry bound parameters and tracebacks carry locals; neither may reach
a log or a client. The error is not re-raised, so the server has nothing to log a traceback of.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from starlette.responses import StreamingResponse

from vault.app import create_app

SECRET = "erika.mustermann@example.de"


class Boom(RuntimeError):
    pass


@pytest.fixture
def app(runtime):
    app = create_app(runtime)

    @app.get("/boom")
    def boom():
        raise Boom(f"duplicate key value (email)=({SECRET})")

    @app.get("/boom-streaming")
    def boom_streaming():
        def rows():
            yield b'{"n": 1}\n'
            raise Boom(SECRET)

        return StreamingResponse(rows(), media_type="application/x-ndjson")

    return app


def test_unexpected_error_is_a_plain_500_and_logged_without_its_message(app, caplog):
    caplog.set_level(logging.DEBUG)
    # raise_server_exceptions=True: an error the app re-raised would surface here.
    with TestClient(app, raise_server_exceptions=True) as client:
        r = client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "detail": "An internal error occurred."}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    request_id = r.headers["x-request-id"]
    assert SECRET not in r.text
    logged = "\n".join(
        rec.getMessage() + (str(rec.exc_info[1]) if rec.exc_info else "") for rec in caplog.records
    )
    assert f"request {request_id} failed: Boom" in logged
    assert SECRET not in logged
    assert not any(rec.exc_info for rec in caplog.records)  # no traceback


def test_error_after_the_answer_started_is_logged_by_type_only(app, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=True) as client:
        r = client.get("/boom-streaming")
    assert r.status_code == 200  # already on the wire; the stream ends short
    assert r.text.startswith('{"n": 1}')
    assert SECRET not in r.text
    assert any("failed: Boom" in rec.getMessage() for rec in caplog.records)
    assert not any(SECRET in rec.getMessage() or rec.exc_info for rec in caplog.records)
