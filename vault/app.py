"""The app factory: where a request enters.

Routers come from each domain; errors from :mod:`vault.errors` become ``{"error", "detail"}``;
a small ASGI middleware gives every request an id, caps the body size and sets security headers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault import __version__
from vault.access.routes import router as access_router
from vault.audit.routes import router as audit_router
from vault.audit.seal import running_sealer
from vault.auth.routes import router as auth_router
from vault.consent.routes import router as consent_router
from vault.customers.routes import router as customers_router
from vault.dsr.routes import router as dsr_router
from vault.errors import (
    InternalError,
    PayloadTooLarge,
    RequestInvalid,
    VaultError,
    add_responses,
)
from vault.events.routes import router as events_router
from vault.runtime import Runtime, RuntimeDep
from vault.selfservice.i18n import STATIC_DIR
from vault.selfservice.routes import api_router as selfservice_api_router
from vault.selfservice.routes import router as selfservice_router

log = logging.getLogger("vault")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]


# Answers carry personal data, tokens and secrets unless shown otherwise: no cache keeps them.
# Only the self-service page's static files may be cached.
NO_STORE = (b"cache-control", b"no-store")
CACHEABLE_PREFIX = "/me/static/"


class EdgeMiddleware:
    """Request id, body-size cap, security headers and ``Cache-Control: no-store`` (unless the
    route set its own), as plain ASGI (no per-request task)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, larger: dict[str, int] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = larger or {}  # path -> its own limit (bulk import)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.larger.get(scope["path"], self.max_body_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_error(send, PayloadTooLarge(), request_id)
                return
        received = 0
        too_large = started = answered = False

        async def capped_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise PayloadTooLarge()
            return message

        cacheable = scope["path"].startswith(CACHEABLE_PREFIX)

        async def send_with_headers(message: Message) -> None:
            nonlocal started, answered
            if too_large and not started:
                # A body without Content-Length went past the cap while the app read it; the
                # framework answers that as a parse error (400): answer 413 instead.
                if message["type"] == "http.response.start":
                    await _send_error(send, PayloadTooLarge(), request_id)
                    answered = True
                return
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not cacheable and not any(n == b"cache-control" for n, _ in headers):
                    headers.append(NO_STORE)
                headers.extend(SECURITY_HEADERS)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except Exception as exc:
            # The one place an unexpected error ends. Log its type only: the messages of driver
            # errors carry bound parameters, and a traceback would carry locals. Not re-raised,
            # so the server does not log it again with its traceback.
            log.error("request %s failed: %s", request_id, type(exc).__name__)
            if not started and not answered:
                await _send_error(send, InternalError(), request_id)


async def _send_error(send: Send, err: VaultError, request_id: str) -> None:
    import orjson

    body = orjson.dumps(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                NO_STORE,
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# What FastAPI raises (as HTTPException 400) for a body it could not decode at all.
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input back: it may be a plaintext e-mail address or a token.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def _document_edge_errors(router: APIRouter) -> APIRouter:
    """Errors a route answers before its own code runs, so the OpenAPI document lists them
    exactly where they can happen: 422 where there are parameters or a body to validate, 413
    where there is a body for the edge middleware to cap. Idempotent."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        takes_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
        if get_flat_params(route.dependant):
            add_responses(route.responses, RequestInvalid)
        if takes_body:
            add_responses(route.responses, RequestInvalid, PayloadTooLarge)
    return router


def create_app(runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime.build()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The audit sealer chains committed events every VAULT_AUDIT_SEAL_INTERVAL seconds.
        with running_sealer(runtime):
            yield

    app = FastAPI(
        lifespan=lifespan,
        title="Consent Vault",
        version=__version__,
        description=(
            "Consent- and privacy-aware customer data vault: encrypted per-customer profiles, "
            "purpose-bound reads enforced by versioned consent, a tamper-evident audit log."
        ),
    )
    app.state.runtime = runtime

    @app.exception_handler(VaultError)
    async def _vault_error(request: Request, exc: VaultError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request %s failed: %s", request.state.request_id, exc.code)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": ""}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(
            {
                "error": "validation_error",
                "detail": f"{where}: {first['msg']}" if where else "The request is not valid.",
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
            # FastAPI answers 400 when a body is not even text (bytes that are not UTF-8);
            # it is as malformed as bad JSON, which is a 422 everywhere else.
            return JSONResponse(
                {
                    "error": "validation_error",
                    "detail": "body: The request body could not be parsed.",
                    "errors": [
                        {
                            "loc": ["body"],
                            "msg": "The body could not be parsed.",
                            "type": "body_unparsable",
                        }
                    ],
                },
                status_code=422,
            )
        codes = {404: "not_found", 405: "method_not_allowed"}
        return JSONResponse(
            {"error": codes.get(exc.status_code, "http_error"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    app.include_router(_document_edge_errors(auth_router))
    app.include_router(_document_edge_errors(customers_router))
    app.include_router(_document_edge_errors(consent_router))
    app.include_router(_document_edge_errors(access_router))
    app.include_router(_document_edge_errors(audit_router))
    app.include_router(_document_edge_errors(events_router))
    app.include_router(_document_edge_errors(selfservice_api_router))
    app.include_router(_document_edge_errors(selfservice_router))
    app.mount("/me/static", StaticFiles(directory=STATIC_DIR), name="selfservice-static")
    app.include_router(_document_edge_errors(dsr_router))

    @app.get("/healthz", operation_id="healthz", tags=["ops"])
    def healthz(runtime: RuntimeDep) -> dict[str, str]:
        """Liveness and database reachability."""
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", operation_id="metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics(runtime: RuntimeDep) -> PlainTextResponse:
        """Prometheus metrics (webhook deliveries by state), read from the database."""
        from vault.events.metrics import render

        body, content_type = render(runtime.engine)
        return PlainTextResponse(body, media_type=content_type)

    @app.get("/.well-known/jwks.json", operation_id="jwks", tags=["ops"])
    def jwks(runtime: RuntimeDep) -> dict[str, Any]:
        """Public keys that verify access tokens, consent receipts and audit checkpoints."""
        from vault.audit.verify import public_jwk

        return {"keys": [*runtime.signer.jwks()["keys"], public_jwk(runtime.keys)]}

    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=runtime.settings.max_body_bytes,
        larger={"/v1/customers/import": runtime.settings.max_import_bytes},
    )
    return app
