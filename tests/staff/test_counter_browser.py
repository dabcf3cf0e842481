"""Issue 19 acceptance, store and call centre, in a real browser (Chromium via Playwright,
against a live server): store staff sign in with password and TOTP, find a customer by phone,
record a grant read from script version N; the gated API read then answers 200 and the ledger
event carries staff id, store and script version. The call centre mails a self-service link
that arrives at the customer's address (aiosmtpd on loopback) and is never shown on a page.

Screenshots (de and en, 1280 and 390 px) go to ``/tmp/shots/counter-*.png`` (or
``$VAULT_TEST_SHOTS``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests import factories
from tests.mail.helpers import drain, smtp_runtime
from tests.mail.smtpd import SmtpServer
from tests.selfservice.helpers import link_in_text
from tests.selfservice.test_browser import (  # the live server and the browser of test_browser
    CHROMIUM,
    CHROMIUM_ARGS,
    live,  # noqa: F401  (a fixture)
)
from tests.staff.helpers import make_staff
from vault.consent.models import ConsentEvent
from vault.db import reader
from vault.mail.delivery import Deliverer

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("VAULT_TEST_SHOTS", "/tmp/shots"))
WIDTHS = {"desktop": 1280, "phone": 390}
PHONE = "+49 221 5550188"
EMAIL = "greta.counter@example.de"


@pytest.fixture
def smtpd() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def _fits(page) -> None:
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
        .slice(-5).map(e => e.tagName + ' ' + e.getBoundingClientRect().right)"""
    )
    assert scroll <= inner, (page.url, scroll, inner, wide)


def _sign_in(page, base: str, staff) -> None:
    page.goto(f"{base}/staff?lang=de")
    page.fill("#name", staff.name)
    page.fill("#password", staff.password)
    page.fill("#code", staff.code())
    page.get_by_role("button", name="Anmelden").click()
    page.wait_for_url(f"{base}/staff")


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        for width_name, width in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": 900})
            url = page.url.split("?")[0]
            page.goto(f"{url}?lang={lang}")
            _fits(page)
            page.screenshot(path=SHOTS / f"counter-{name}-{lang}-{width_name}.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_store_and_call_centre_in_a_real_browser(live, backend, smtpd) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customer = factories.create_customer(
            session,
            runtime,
            email=EMAIL,
            phone=PHONE,
            first_name="Greta",
            loyalty_number="TE00000188",
            loyalty_points=880,
            street="Venloer Str. 9",
            preferred_language="de",
        )
        app_client, _secret = factories.create_client(
            session, runtime, scopes=["data:read"], purposes=["personalised_offers"]
        )
    store = make_staff(runtime, "store")
    phone_desk = make_staff(runtime, "call_center")
    script = runtime.policy.scripts["offers_counter"]
    data_url = f"{server.url}/v1/customers/{customer.id}/data?purpose=personalised_offers"
    headers = {"Authorization": f"Bearer {factories.token(runtime, app_client, 'data:read')}"}
    assert httpx.get(data_url, headers=headers).status_code == 403  # no consent yet

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)

        # store: sign in with password and TOTP, find by phone
        _sign_in(page, server.url, store)
        page.goto(f"{server.url}/staff/customers?lang=de")
        _shoot(page, "search")
        page.goto(f"{server.url}/staff/customers?lang=de")
        page.get_by_label("Telefonnummer").check()
        page.fill("#c-value", "0221 5550188")
        page.get_by_role("button", name="Suchen", exact=True).click()
        page.wait_for_url(f"{server.url}/staff/customers/{customer.id}")
        assert PHONE not in page.url
        expect(page.get_by_text("TE00000188")).to_be_visible()
        assert "Venloer" not in page.content()  # not a loyalty_programme attribute
        _shoot(page, "customer")

        # the statement form shows the script; the customer agrees
        page.goto(f"{server.url}/staff/customers/{customer.id}/consents/personalised_offers")
        expect(page.get_by_text(script.text.de)).to_be_visible()
        _shoot(page, "statement")
        page.goto(
            f"{server.url}/staff/customers/{customer.id}/consents/personalised_offers?lang=de"
        )
        page.locator(f'input[name="script"][value="{script.ref}"]').check()
        page.locator('input[name="status"][value="granted"]').check()
        page.get_by_role("button", name="Erfassen", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Erklärung erfasst")
        _fits(page)
        page.screenshot(path=SHOTS / "counter-recorded-de-desktop.png", full_page=True)

        read = httpx.get(data_url, headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["attributes"]["loyalty_points"] == 880
        with Session(reader(runtime.engine)) as s:
            event = s.execute(
                select(ConsentEvent).where(
                    ConsentEvent.customer_id == customer.id,
                    ConsentEvent.purpose == "personalised_offers",
                )
            ).scalar_one()
            assert event.channel == "store" and event.recorded_by == f"staff:{store.id}"
            assert event.evidence["staff_id"] == store.id
            assert event.evidence["store_id"] == "koeln-ehrenfeld"
            assert event.evidence["script_version"] == f"offers_counter.v{script.version}"
        page.goto(f"{server.url}/staff/customers/{customer.id}?lang=en")
        expect(page.locator("#purpose-personalised_offers")).to_contain_text("granted")
        page.screenshot(path=SHOTS / "counter-customer-after-en-desktop.png", full_page=True)

        # the customer says: no push, monthly at most; the card shows it in plain words
        prefs = page.locator("#prefs-personalised_offers")
        prefs.locator("#cc-personalised_offers-push").uncheck()
        prefs.locator("#fq-personalised_offers-monthly").check()
        prefs.get_by_role("button", name="Record what the customer wants").click()
        expect(page.locator("#prefs-saved")).to_be_visible()
        expect(page.locator("#sum-personalised_offers")).to_contain_text(
            "at most once a month, by e-mail"
        )
        expect(prefs.locator(".history")).to_contain_text("Push notification off")
        page.goto(f"{server.url}/staff/customers/{customer.id}?lang=de")
        _fits(page)
        page.locator("#preferences").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "counterprefs-de-1280.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 900})
        page.goto(f"{server.url}/staff/customers/{customer.id}?lang=en")
        _fits(page)
        page.screenshot(path=SHOTS / "counterprefs-en-390.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        context.close()

        # call centre: find by e-mail, mail the link; the page never shows it
        context = browser.new_context(viewport={"width": 390, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        _sign_in(page, server.url, phone_desk)
        page.goto(f"{server.url}/staff/customers?lang=en")
        page.get_by_label("E-mail address").check()
        page.fill("#c-value", EMAIL.upper())
        page.get_by_role("button", name="Find", exact=True).click()
        page.wait_for_url(f"{server.url}/staff/customers/{customer.id}")
        assert "Venloer Str. 9" in page.content()  # order_fulfilment: the call centre's purpose
        page.get_by_role("button", name="Send the link by e-mail").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Link sent")
        _fits(page)
        page.screenshot(path=SHOTS / "counter-link-sent-en-phone.png", full_page=True)
        shown = page.content()
        context.close()
        browser.close()

    assert drain(Deliverer(smtp_runtime(runtime, smtpd.url()))) == 1
    assert [rcpts for _from, rcpts in smtpd.envelopes] == [[EMAIL]]
    text = smtpd.messages[0].get_body(("plain",)).get_content()
    path = link_in_text(runtime, text)
    assert path.startswith("/me/login/")
    assert path not in shown and path.rsplit("/", 1)[-1] not in shown
    assert backend in ("sqlite", "postgres")
