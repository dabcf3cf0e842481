"""The double opt-in page in a real browser (Chromium through Playwright, as
``test_browser.py``): the link shows what is confirmed and changes nothing; the button confirms
(a real browser's ``Sec-Fetch-Site``/``Origin`` pass the same-origin check); a used, superseded
or unknown link gets a friendly page. Screenshots, desktop 1280 and phone 390 px, de and en, go
to ``tests/selfservice/artifacts/doi/`` (git-ignored)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session

from tests import factories
from tests.selfservice.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    WIDTHS,
    _labelled_controls_problems,
    live,  # noqa: F401  (the fixture)
)
from vault.db import reader

pytestmark = pytest.mark.slow


def _status(api: httpx.Client, headers, cid) -> str:
    r = api.get(f"/v1/customers/{cid}/consents", headers=headers)
    return {p["purpose"]: p["status"] for p in r.json()["purposes"]}["newsletter"]


def test_the_confirmation_link_in_a_real_browser(live) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / "doi"
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customers = [factories.create_customer(session, runtime) for _ in range(5)]
        own_mailer = factories.auth_headers(session, runtime, "consent:write", "consent:confirm")
        consent_reader = factories.auth_headers(session, runtime, "consent:read")
    api = httpx.Client(base_url=server.url, timeout=10)

    def grant(cid, status="granted") -> str | None:
        r = api.post(
            f"/v1/customers/{cid}/consents",
            json={"purpose": "newsletter", "status": status, "channel": "web"},
            headers=own_mailer,
        )
        assert r.status_code == 201, r.text
        return r.json()["confirmation_token"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        n = 0
        for lang in ("de", "en"):
            for width_name, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 900})
                cid = customers[n].id
                n += 1
                token = grant(cid)
                page.goto(f"{server.url}/confirm/{token}?lang={lang}")
                expect(page.locator("html")).to_have_attribute("lang", lang)
                expect(page.locator("h2")).to_contain_text("Newsletter")
                expect(page.locator("main")).to_contain_text("Tante Emma")
                assert _labelled_controls_problems(page) == []
                scroll, inner = page.evaluate(
                    "() => [document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert scroll <= inner, (lang, width_name, scroll, inner)
                page.screenshot(path=shots / f"{lang}-{width_name}-1-confirm.png", full_page=True)
                assert _status(api, consent_reader, cid) == "pending_confirmation"

                button = "Bestätigen" if lang == "de" else "Confirm"
                page.get_by_role("button", name=button).click()
                done = "Ihre Einwilligung ist bestätigt" if lang == "de" else "consent is confirmed"
                expect(page.locator("h1")).to_contain_text(done)
                page.screenshot(path=shots / f"{lang}-{width_name}-2-confirmed.png", full_page=True)
                assert _status(api, consent_reader, cid) == "granted"

                page.goto(f"{server.url}/confirm/{token}?lang={lang}")  # the link again
                used = "bereits bestätigt" if lang == "de" else "already confirmed"
                expect(page.locator("h1")).to_contain_text(used)
                page.screenshot(path=shots / f"{lang}-{width_name}-3-used.png", full_page=True)

                old = grant(cid)
                grant(cid, "withdrawn")
                response = page.goto(f"{server.url}/confirm/{old}?lang={lang}")
                assert response.status == 409
                gone = "gilt nicht mehr" if lang == "de" else "no longer valid"
                expect(page.locator("h1")).to_contain_text(gone)
                page.screenshot(
                    path=shots / f"{lang}-{width_name}-4-superseded.png", full_page=True
                )

                response = page.goto(f"{server.url}/confirm/{'x' * 43}?lang={lang}")
                assert response.status == 404
                page.screenshot(path=shots / f"{lang}-{width_name}-5-unknown.png", full_page=True)
        browser.close()
