"""/docs and /redoc: rendered from files shipped in the package, each page with a CSP of its
own, the rest of the app with the strict default, nothing loaded from anywhere else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vault import apidocs
from vault.http import SECURITY_HEADERS

DEFAULT_CSP = dict(SECURITY_HEADERS)[b"content-security-policy"].decode()
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_the_doc_pages_load_only_files_the_vault_serves(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script>" not in r.text  # no inline script: script-src 'self' holds
    assets = ASSET.findall(r.text)
    assert assets, r.text
    for url in assets:
        assert url.startswith(apidocs.STATIC_PATH + "/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert "no-store" not in asset.headers.get("cache-control", "")  # versioned, cacheable
        assert asset.headers["content-security-policy"] == DEFAULT_CSP
    assert "cdn." not in r.text and "https://" not in r.text


def test_each_doc_page_has_its_own_csp_and_nothing_else_does(client):
    swagger = client.get("/docs").headers["content-security-policy"]
    redoc = client.get("/redoc").headers["content-security-policy"]
    for csp in (swagger, redoc):
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
        assert directives["connect-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert "https:" not in csp and "*" not in csp
    assert "'unsafe-inline'" not in swagger
    assert "style-src 'self' 'unsafe-inline'" in redoc  # ReDoc injects its styles
    for path in ("/openapi.json", "/me", "/v1/purposes", "/docs/", "/redoc/x", "/healthz"):
        r = client.get(path, follow_redirects=False)
        assert r.headers["content-security-policy"] == DEFAULT_CSP, path


def test_every_shipped_asset_has_its_licence_and_checksum():
    readme = (apidocs.STATIC_DIR / "README.md").read_text()
    for folder in ("swagger-ui", "redoc"):
        files = {p.name for p in (apidocs.STATIC_DIR / folder).iterdir()}
        assert "LICENSE" in files, folder
        for name in files:
            assert f"  {folder}/{name}\n" in readme, f"{folder}/{name} has no checksum line"
    assert f"| {apidocs.SWAGGER_UI_VERSION} |" in readme
    assert f"| {apidocs.REDOC_VERSION} |" in readme


def test_the_checksums_match_the_files():
    import hashlib

    readme = (apidocs.STATIC_DIR / "README.md").read_text()
    lines = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    assert len(lines) >= 8
    for digest, name in lines:
        data = (apidocs.STATIC_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


@pytest.mark.slow
def test_both_pages_render_in_a_real_browser(tmp_path: Path, db_url: str, data_dir: Path):
    """Chromium: Swagger UI lists the operations and ReDoc the tags, with no CSP violation
    but the one ReDoc's footer logo (on its maker's CDN) earns, and no request leaves the
    vault."""
    from tests.selfservice.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        Server,
        _free_port,
        _require_browser,
    )
    from vault.config import Settings
    from vault.runtime import Runtime

    _require_browser()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    settings = Settings(
        data_dir=data_dir,
        database_url=db_url,
        public_url=f"http://127.0.0.1:{port}",
        audit_seal_interval=0,
        _env_file=None,
    )
    runtime = Runtime.build(settings)
    shots = Path(__file__).parent / "selfservice" / "artifacts" / "apidocs"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with Server(runtime, port) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for path, ready, expect in (
                ("/docs", ".opblock-summary-path", "/v1/customers/{customer_id}/data"),
                ("/redoc", "h1", "Consent Vault"),
            ):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                console: list[str] = []
                page.on("console", lambda m, c=console: c.append(m.text))
                page.on("pageerror", lambda e, c=console: c.append(f"pageerror: {e}"))
                outside: list[str] = []
                page.on(
                    "request",
                    lambda r, o=outside: (
                        None
                        if r.url.startswith((server.url, "blob:" + server.url, "data:"))
                        else o.append(r.url)
                    ),
                )
                page.goto(server.url + path)
                page.wait_for_selector(ready, timeout=30_000)
                page.wait_for_timeout(500)
                assert expect in page.inner_text("body"), path
                page.screenshot(path=shots / f"{path.strip('/')}.png")
                errors = [m for m in console if "Content Security Policy" in m or "pageerror" in m]
                if path == "/redoc":
                    assert outside == ["https://cdn.redoc.ly/redoc/logo-mini.svg"], outside
                    assert all("cdn.redoc.ly" in m for m in errors), errors
                else:
                    assert outside == [] and errors == [], (outside, errors)
                page.close()
            browser.close()
    finally:
        runtime.engine.dispose()
