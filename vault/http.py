"""The HTTP edge shared by every door: request ids, header and body caps, the bearer token
checked before a body is received, security headers, error bodies, and the OpenAPI entries for
errors a route answers before its own code runs.

:class:`EdgeMiddleware` wraps the whole app as plain ASGI; :func:`install_error_handlers` turns
:class:`vault.errors.VaultError` (and FastAPI's own errors) into ``{"error", "detail"}`` bodies.

Why the token is checked here: FastAPI receives and parses a route's body before it runs the
route's dependencies, so a dependency that checks the token comes too late to spare the server
an unauthenticated body. The edge knows each route's door (:func:`doors`: its bearer scopes, or
none, and its body cap) and, before the app may receive a byte of the body, asks the gate the
app gives it (the token check of :mod:`vault.auth`, which this module may not import) about the
``Authorization`` header. Routes without a bearer token (the token endpoint, whose body is the
credentials, the self-service forms, public routes) get a small body cap instead.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
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
CACHEABLE_PREFIXES = ("/me/static/", "/staff/static/", "/docs/static/")


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON written by orjson, for answers that are plain data already (the hot routes):
    Starlette's ``JSONResponse`` runs the standard library's encoder (profiled: ~45 us of a
    gated read under pyinstrument), and a ``response_model`` would validate the answer a
    second time."""
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


# Request headers, all together: what a client may send before anything is read. Counted as on
# the wire (name, value, ": " and CRLF per header). uvicorn's parser buffers them first.
MAX_HEADER_BYTES = 16 * 1024
# The body cap of routes that take no bearer token: the token endpoint (its body is the
# credentials), the self-service forms, public routes. Their bodies are read before anyone is
# known, so they stay small (and never above VAULT_MAX_BODY_BYTES).
UNAUTHENTICATED_BODY_BYTES = 16 * 1024
# Starlette's limit on the fields of one form (urlencoded or multipart).
MAX_FORM_FIELDS = 1000
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HeadersTooLarge(VaultError):
    code = "request_headers_too_large"
    status = 431
    default_detail = f"The request headers are too large (at most {MAX_HEADER_BYTES} bytes)."


class TooManyFields(VaultError):
    code = "too_many_fields"
    status = 413
    default_detail = f"A form may have at most {MAX_FORM_FIELDS} fields."


# The edge's question to the auth domain: (Authorization header or None, scopes the route
# needs) -> None, or raises the 401/403 VaultError the route's own dependency would raise.
Gate = Callable[[str | None, Sequence[str]], None]
# A handler that may answer a request of its method before the framework (the gated read,
# the consent write), called only for a request with exactly one ``Authorization: Bearer``
# header and no chunked body: given the scope, that bearer token (unchecked), the
# Content-Length (None without one) and the capped receive, it answers (a Response, or None to
# let the app answer, and the receive the app is to use: a handler that read the body hands it
# on, replayed).
FastPath = Callable[[Scope, str, int | None, Receive], Awaitable[tuple[Response | None, Receive]]]
# A customer id as the fast paths take it: the canonical lower-case spelling only (the route
# parses every other spelling FastAPI accepts).
CANONICAL_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out ``messages`` (a body already read) first, then ``receive``'s."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


@dataclass(frozen=True)
class Door:
    """What the edge knows of one route before the app sees a request to it: where it is, the
    bearer scopes it needs (None: it takes no bearer token) and its body cap."""

    path_regex: re.Pattern[str]
    methods: frozenset[str]
    scopes: tuple[str, ...] | None
    max_body: int


def _security_scopes(dependant: Dependant) -> tuple[str, ...] | None:
    """The scopes of a route's bearer-token checks (every one must be held), None if the route
    checks no token."""
    found: list[str] | None = None
    for dep in dependant.dependencies:
        if isinstance(dep.call, SecurityBase):
            found = found or []
            wanted = [*(dep.parent_oauth_scopes or []), *(dep.own_oauth_scopes or [])]
        else:
            sub = _security_scopes(dep)
            if sub is None:
                continue
            found = found or []
            wanted = list(sub)
        found.extend(s for s in wanted if s not in found)
    return None if found is None else tuple(found)


def doors(app: FastAPI, *, max_body_bytes: int, larger: dict[str, int] | None = None) -> list[Door]:
    """Every API route of ``app``, in routing order, as the edge sees it. ``larger``: route path
    -> its own body cap (the bulk import)."""
    larger = larger or {}
    out = []
    for rc in iter_route_contexts(app.routes):
        if not isinstance(rc.original_route, APIRoute):
            continue  # static files, the docs: they read no body
        scopes = _security_scopes(rc.dependant)
        if scopes is None:
            cap = min(max_body_bytes, UNAUTHENTICATED_BODY_BYTES)
        else:
            cap = larger.get(rc.path, max_body_bytes)
        out.append(Door(rc.path_regex, frozenset(rc.methods or ()), scopes, cap))
    return out


class EdgeMiddleware:
    """Request id, header-size cap, the bearer token of a route checked before its body is
    received, body-size caps, security headers and ``Cache-Control: no-store`` (unless the route
    set its own), as plain ASGI (no per-request task). ``page_csp`` gives a few exact paths a
    Content-Security-Policy of their own (the API docs); every other answer, errors included,
    gets the strict default.

    A request that may carry a body (any method but GET, HEAD and OPTIONS, or a body announced
    by ``Content-Length`` or ``Transfer-Encoding``) is matched to its :class:`Door` first: a
    ``Content-Length`` past the door's cap is 413, a route that needs a bearer token asks
    ``gate`` about the header (401/403), all before the app runs; the body is counted while the
    app receives it (413 past the cap, chunked bodies too). A request without a body has
    nothing to spare: its token is checked by the route's dependency, as on every request."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        doors: Sequence[Door] = (),
        gate: Gate | None = None,
        page_csp: dict[str, bytes] | None = None,
        fast: Mapping[str, FastPath] | None = None,
    ):
        self.app = app
        self.fast = dict(fast or {})
        self.max_body_bytes = max_body_bytes
        self.gate = gate
        self.page_headers = {path: security_headers(csp) for path, csp in (page_csp or {}).items()}
        by_method: dict[str, list[Door]] = {}
        for door in doors:
            for method in door.methods:
                by_method.setdefault(method, []).append(door)
        self.doors = by_method

    def _door(self, method: str, path: str) -> Door | None:
        # the first route that matches path and method, as the router will pick it
        for door in self.doors.get(method, ()):
            if door.path_regex.match(path):
                return door
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        header_bytes = 0
        length: int | None = None
        chunked = False
        authorization: bytes | None = None
        authorizations = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value
                authorizations += 1
        if header_bytes > MAX_HEADER_BYTES:
            await _send_error(send, HeadersTooLarge(), request_id)
            return
        limit = self.max_body_bytes
        if scope["method"] not in _SAFE_METHODS or chunked or length:
            door = self._door(scope["method"], scope["path"])
            if door is not None:
                limit = door.max_body
            if length is not None and length > limit:
                await _send_error(send, PayloadTooLarge(), request_id)
                return
            if door is not None and door.scopes is not None and self.gate is not None:
                try:
                    self.gate(
                        None if authorization is None else authorization.decode("latin-1"),
                        door.scopes,
                    )
                except VaultError as exc:  # 401/403: the body is never received
                    await _send_error(send, exc, request_id)
                    return
        received = 0
        too_large = started = replaced = False

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
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if too_large and message["status"] != 413:
                    # A body without Content-Length went past the cap while the app read it;
                    # the framework answers that as a parse error (400): answer 413 instead.
                    # (A route that streams its body answers its own 413: the bulk import.)
                    await _send_error(send, PayloadTooLarge(), request_id)
                    replaced = True
                    return
                started = True
                headers = list(message.get("headers", []))
                if not cacheable and not any(n == b"cache-control" for n, _ in headers):
                    headers.append(NO_STORE_HEADER)
                headers.extend(edge_headers)
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            fast = self.fast.get(scope["method"])
            response, app_receive = None, capped_receive
            token = _bearer(authorization) if authorizations == 1 else None
            if fast is not None and token and not chunked:
                response, app_receive = await fast(scope, token, length, capped_receive)
            if response is not None:
                await response(scope, app_receive, send_with_headers)
            else:
                await self.app(scope, app_receive, send_with_headers)
        except Exception as exc:
            # The one place an unexpected error ends. Log its type only: the messages of driver
            # errors carry bound parameters, and a traceback would carry locals. Not re-raised,
            # so the server does not log it again with its traceback.
            log.error("request %s failed: %s", request_id, type(exc).__name__)
            if not started and not replaced:
                await _send_error(send, InternalError(), request_id)


def _bearer(authorization: bytes | None) -> str | None:
    """The token of ``Bearer <token>`` exactly; anything else is the route's to answer."""
    if authorization is None or not authorization.startswith(b"Bearer "):
        return None
    return authorization[7:].decode("latin-1").strip() or None


async def _send_error(send: Send, err: VaultError, request_id: str) -> None:
    body = orjson.dumps(err.body())
    extra = [(k.lower().encode(), v.encode("latin-1")) for k, v in (err.headers() or {}).items()]
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
                *extra,
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
    validate, 413 where there is a body for the edge middleware to cap (and too many fields
    where the body is a form), 431 everywhere (request headers past the cap). Idempotent."""
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
        if route.body_field is not None and isinstance(route.body_field.field_info, params.Form):
            add_responses(route.responses, TooManyFields)
        add_responses(route.responses, HeadersTooLarge)
    return router


def _log_server_error(exc: VaultError, request_id: str | None) -> None:
    if exc.status >= 500:
        log.error("request %s failed: %s", request_id, exc.code)


def error_response(exc: VaultError, request_id: str | None) -> Response:
    """A domain error as the API answers it: ``{"error", "detail"}`` and its headers."""
    _log_server_error(exc, request_id)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors become ``{"error", "detail"}``; validation and framework errors get the same
    shape, and never echo the input."""

    @app.exception_handler(VaultError)
    async def _vault_error(request: Request, exc: VaultError) -> Response:
        return _vault_error_response(request, exc)

    def _vault_error_response(request: Request, exc: VaultError) -> Response:
        # A route class may answer its errors in its own form (the self-service pages: HTML).
        render = getattr(request.scope.get("route"), "render_error", None)
        if render is not None:
            _log_server_error(exc, request.state.request_id)
            return render(request, exc)
        return error_response(exc, request.state.request_id)

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
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
            # Starlette's form parser refused the form (400, undocumented): past its field or
            # file count that is our 413; otherwise the form is malformed, as below.
            if str(exc.detail).startswith("Too many"):
                return _vault_error_response(request, TooManyFields())
            exc = StarletteHTTPException(400, _FASTAPI_BODY_PARSE_ERROR)
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
