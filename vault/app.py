"""The app factory: where a request enters.

Each domain brings its router; :mod:`vault.http` brings the edge (request id, header and body caps,
the bearer token checked before a body is received, security headers, error bodies) and
:mod:`vault.ops` the health, metrics and key endpoints. The edge's token check is
:func:`vault.auth.deps.check_before_body`, handed to it here (shared modules know no domain).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vault import __version__, apidocs
from vault.access.routes import fast_read
from vault.access.routes import router as access_router
from vault.audit.routes import router as audit_router
from vault.audit.seal import running_sealer
from vault.auth import deps as auth_deps
from vault.auth.routes import router as auth_router
from vault.consent.routes import fast_consent_write
from vault.consent.routes import router as consent_router
from vault.customers.routes import router as customers_router
from vault.dsr.routes import router as dsr_router
from vault.events.routes import router as events_router
from vault.http import EdgeMiddleware, document_edge_errors, doors, install_error_handlers
from vault.mail.delivery import running_deliverer
from vault.ops import router as ops_router
from vault.preferences.routes import router as preferences_router
from vault.runtime import Runtime
from vault.selfservice.confirmation import router as confirmation_router
from vault.selfservice.i18n import STATIC_DIR
from vault.selfservice.routes import api_router as selfservice_api_router
from vault.selfservice.routes import router as selfservice_router
from vault.selfservice.unsubscribe import router as unsubscribe_router
from vault.staff.i18n import STATIC_DIR as STAFF_STATIC_DIR
from vault.staff.routes import router as staff_router


def _include_routes(app: FastAPI) -> None:
    """Every domain's routes, in routing order."""
    app.include_router(document_edge_errors(auth_router))
    app.include_router(document_edge_errors(customers_router))
    app.include_router(document_edge_errors(consent_router))
    app.include_router(document_edge_errors(access_router))
    app.include_router(document_edge_errors(preferences_router))
    app.include_router(document_edge_errors(audit_router))
    app.include_router(document_edge_errors(events_router))
    app.include_router(document_edge_errors(selfservice_api_router))
    app.include_router(document_edge_errors(selfservice_router))
    app.include_router(document_edge_errors(unsubscribe_router))
    app.include_router(document_edge_errors(confirmation_router))
    app.mount("/me/static", StaticFiles(directory=STATIC_DIR), name="selfservice-static")
    app.include_router(document_edge_errors(dsr_router))
    app.include_router(document_edge_errors(staff_router))
    app.mount("/staff/static", StaticFiles(directory=STAFF_STATIC_DIR), name="staff-static")
    app.include_router(document_edge_errors(ops_router))
    apidocs.install(app)


@cache
def _route_table() -> tuple[BaseRoute, ...]:
    """The routes of :func:`_include_routes`, analysed once per process and shared by every app
    made in it. FastAPI analyses each route's dependencies and builds its validators the first
    time an app's routes are walked: about 0.4 s of CPU for the vault's routes, paid at every
    :func:`create_app` before (by each test, each CLI command that makes an app). Nothing in a
    route belongs to one app: a request finds its Runtime in ``request.app.state``. (The
    vault uses no ``dependency_overrides``; the shared routes would not see an app's.)"""
    table = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    _include_routes(table)
    for _ in iter_route_contexts(table.routes):  # the analysis, paid here once
        pass
    return tuple(table.router.routes)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime.build()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The audit sealer chains committed events every VAULT_AUDIT_SEAL_INTERVAL seconds; on
        # the embedded default the server also sends the mail outbox (no 'vault worker' needed).
        with running_sealer(runtime), running_deliverer(runtime):
            yield

    app = FastAPI(
        lifespan=lifespan,
        # /docs and /redoc from files shipped in the package, each with its own CSP (no CDN)
        docs_url=None,
        redoc_url=None,
        title="Consent Vault",
        version=__version__,
        description=(
            "Consent- and privacy-aware customer data vault: encrypted per-customer profiles, "
            "purpose-bound reads enforced by versioned consent, a tamper-evident audit log."
        ),
    )
    app.state.runtime = runtime

    install_error_handlers(app)
    app.router.routes.extend(_route_table())

    def gate(authorization: str | None, scopes: Sequence[str]) -> None:
        auth_deps.check_before_body(runtime=runtime, authorization=authorization, scopes=scopes)

    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=runtime.settings.max_body_bytes,
        doors=doors(
            app,
            max_body_bytes=runtime.settings.max_body_bytes,
            larger={
                "/v1/customers/import": runtime.settings.max_import_bytes,
                "/v1/contacts": runtime.settings.max_import_bytes,
            },
        ),
        gate=gate,
        page_csp=apidocs.PAGE_CSP,
        fast={"GET": fast_read(runtime), "POST": fast_consent_write(runtime)},
    )
    # X-Forwarded-For/-Proto count only from the proxies the operator names (none by default):
    # from anyone else they would let a caller pick the address the rate limits count.
    if runtime.settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=runtime.settings.trusted_proxies)
    return app
