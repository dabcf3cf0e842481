"""The interactive API docs: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

Their JavaScript and CSS are shipped inside the package (``vault/static/``, with their licence
files; versions and checksums in ``vault/static/README.md``) and served by the vault under
``/docs/static/``: no CDN, so the pages work on a closed network and load nothing the vault did
not ship. Each page has a Content-Security-Policy of its own (:data:`PAGE_CSP`, applied by
:class:`vault.http.EdgeMiddleware` to these paths only); every other answer keeps the strict
default. Swagger UI needs ``img-src data:`` (its icons) and ``connect-src 'self'`` (the document
and "Try it out"); ReDoc also needs ``style-src 'unsafe-inline'`` (its styles are injected at
run time) and ``worker-src blob:`` (its search index). No page allows inline scripts or eval.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from vault.http import NO_STORE

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/docs/static"
SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"
OPENAPI_URL = "/openapi.json"
DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL = "/docs", "/docs/oauth2-redirect", "/redoc"

_COMMON = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
SWAGGER_CSP = (
    _COMMON + b"; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
)
REDOC_CSP = (
    _COMMON + b"; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; worker-src blob:"
)
PAGE_CSP = {DOCS_URL: SWAGGER_CSP, OAUTH2_REDIRECT_URL: SWAGGER_CSP, REDOC_URL: REDOC_CSP}

router = APIRouter(include_in_schema=False)


def _asset(name: str, version: str) -> str:
    return f"{STATIC_PATH}/{name}?v={version}"


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n"
    )
    return HTMLResponse(html, headers=NO_STORE)


@router.get(DOCS_URL)
def swagger_ui() -> HTMLResponse:
    """Swagger UI over the OpenAPI document; "Authorize" takes client credentials."""
    v = SWAGGER_UI_VERSION
    return _page(
        "Consent Vault: API (Swagger UI)",
        f'<link rel="stylesheet" href="{_asset("swagger-ui/swagger-ui.css", v)}">\n'
        f'<link rel="icon" href="{_asset("swagger-ui/favicon-32x32.png", v)}">\n',
        f'<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}" '
        f'data-oauth2-redirect-url="{OAUTH2_REDIRECT_URL}"></div>\n'
        f'<script src="{_asset("swagger-ui/swagger-ui-bundle.js", v)}"></script>\n'
        f'<script src="{_asset("apidocs/swagger-init.js", v)}"></script>\n',
    )


@router.get(OAUTH2_REDIRECT_URL)
def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """Where Swagger UI's OAuth2 pop-up returns (flows with a redirect)."""
    v = SWAGGER_UI_VERSION
    return _page(
        "Consent Vault: OAuth2 redirect",
        "",
        f'<script src="{_asset("swagger-ui/oauth2-redirect.js", v)}"></script>\n',
    )


@router.get(REDOC_URL)
def redoc() -> HTMLResponse:
    """ReDoc over the OpenAPI document (reading, no requests)."""
    return _page(
        "Consent Vault: API (ReDoc)",
        f'<link rel="icon" href="{_asset("swagger-ui/favicon-32x32.png", SWAGGER_UI_VERSION)}">\n',
        f'<redoc spec-url="{OPENAPI_URL}"></redoc>\n'
        f'<script src="{_asset("redoc/redoc.standalone.js", REDOC_VERSION)}"></script>\n',
    )


def install(app: FastAPI) -> None:
    """The three pages and their files (create the app with ``docs_url=None, redoc_url=None``)."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="docs-static")
