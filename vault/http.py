"""The HTTP edge shared by every door: request ids, body caps, security headers, error bodies,
and the OpenAPI entries for errors a route answers before its own code runs.

:class:`EdgeMiddleware` wraps the whole app as plain ASGI; :func:`install_error_handlers` turns
:class:`vault.errors.VaultError` (and FastAPI's own errors) into ``{"error", "detail"}`` bodies.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.errors import (
    Forbidden,
    InternalError,
    NotAuthenticated,
    PayloadTooLarge,
    RequestInvalid,
    VaultError,
    add_responses,
)

log = logging.getLogger("vault")

CSP = b"content-security-policy"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        CSP,
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]


def security_headers(csp: bytes | None = None) -> list[tuple[bytes, bytes]]:
    """The security headers, with a page's own Content-Security-Policy instead of the default."""
    if csp is None:
        return SECURITY_HEADERS
    return [(name, csp if name == CSP else value) for name, value in SECURITY_HEADERS]


# Answers carry personal data, tokens and secrets unless shown otherwise: no cache keeps them.
# Only the shipped static files (self-service page, API docs) may be cached.
NO_STORE_HEADER = (b"cache-control", b"no-store")
# The same for the routes that answer personal data themselves, with HTTP/1.0's Pragma too.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CACHEABLE_PREFIXES = ("/me/static/", "/docs/static/")


class EdgeMiddleware:
    """Request id, body-size cap, security headers and ``Cache-Control: no-store`` (unless the
    route set its own), as plain ASGI (no per-request task). ``page_csp`` gives a few exact
    paths a Content-Security-Policy of their own (the API docs); every other answer, errors
    included, gets the strict default."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        larger: dict[str, int] | None = None,
        page_csp: dict[str, bytes] | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = larger or {}  # path -> its own limit (bulk import)
        self.page_headers = {path: security_headers(csp) for path, csp in (page_csp or {}).items()}

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

        cacheable = scope["path"].startswith(CACHEABLE_PREFIXES)
        edge_headers = self.page_headers.get(scope["path"], SECURITY_HEADERS)

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
                    headers.append(NO_STORE_HEADER)
                headers.extend(edge_headers)
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
    body = orjson.dumps(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                NO_STORE_HEADER,
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


def _has_security(dependant: Dependant) -> bool:
    """Whether a security scheme (the bearer token) is among a route's dependencies."""
    return any(
        isinstance(dep.call, SecurityBase) or _has_security(dep) for dep in dependant.dependencies
    )


def document_edge_errors(router: APIRouter) -> APIRouter:
    """Errors a route answers before its own code runs, so the OpenAPI document lists them
    exactly where they can happen: 401 and 403 where a bearer token is checked (unless the
    route documents its own entry for that status), 422 where there are parameters or a body to
    validate, 413 where there is a body for the edge middleware to cap. Idempotent."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if _has_security(route.dependant):
            for err in (NotAuthenticated, Forbidden):
                if err.status not in route.responses:
                    add_responses(route.responses, err)
        takes_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
        if get_flat_params(route.dependant):
            add_responses(route.responses, RequestInvalid)
        if takes_body:
            add_responses(route.responses, RequestInvalid, PayloadTooLarge)
    return router


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors become ``{"error", "detail"}``; validation and framework errors get the same
    shape, and never echo the input."""

    @app.exception_handler(VaultError)
    async def _vault_error(request: Request, exc: VaultError) -> Response:
        if exc.status >= 500:
            log.error("request %s failed: %s", request.state.request_id, exc.code)
        # A route class may answer its errors in its own form (the self-service pages: HTML).
        render = getattr(request.scope.get("route"), "render_error", None)
        if render is not None:
            return render(request, exc)
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


def page_size(maximum: int) -> Any:
    """``limit: Annotated[int, page_size(1000)] = 100``: a list route's documented cap. Larger
    values are refused (422 ``validation_error``, type ``less_than_equal``), never clamped."""
    return Query(
        ge=1,
        le=maximum,
        description=f"how many to return, 1 to {maximum}; a larger value is refused with 422",
    )
