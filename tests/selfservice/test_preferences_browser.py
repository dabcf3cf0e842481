"""The preference forms of /me in a real browser (Chromium through Playwright, like
test_browser.py), keyboard only, in German and English: turn the topic ``wine`` off, choose
``monthly``, pause until tomorrow; after each the plain-words sentence says so and the API
shows it. Screenshots at 1280 and 390 px (no horizontal overflow) into
``artifacts/preferences/``; the unsubscribe page's link to /me as well."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlmodel import Session

from tests import factories
from tests.preferences.helpers import granted_newsletter
from tests.selfservice.helpers import mailed_link
from tests.selfservice.test_browser import (  # noqa: F401 (the live fixture)
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    WIDTHS,
    _labelled_controls_problems,
    live,
    pytestmark,
)
from vault.crypto import unsubscribe as tokens
from vault.db import reader
from vault.preferences.models import PreferenceEvent

TEXTS = {
    "de": {
        "locale": "de-DE",
        "start": "höchstens einmal pro Woche, per E-Mail",
        "no_wine": "nur zu den Themen Obst und Gemüse, Rezepte und Wochenangebote",
        "monthly": "höchstens einmal im Monat, per E-Mail, nur zu",
        "paused": "bis ",
        "paused_rest": " nichts, danach höchstens einmal im Monat",
        "saved": "Ihre Auswahl für „Newsletter“ ist gespeichert.",
        "pause_saved": "Pausiert: Sie bekommen von uns bis zum",
        "change": "Ändern, was Sie bekommen",
    },
    "en": {
        "locale": "en-GB",
        "start": "at most once a week, by e-mail",
        "no_wine": "only about fruit and vegetables, recipes and weekly offers",
        "monthly": "at most once a month, by e-mail, only about",
        "paused": "nothing until ",
        "paused_rest": ", then at most once a month",
        "saved": "Your choices for “Newsletter” have been saved.",
        "pause_saved": "Paused: you receive no advertising from us until",
        "change": "Change what you receive",
    },
}


PARTS = ("p-newsletter", "p-push_notifications", "pause")


def _tab_to(page, selector: str, limit: int = 300) -> None:
    """Press Tab until the element matching ``selector`` has the focus (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement?.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def _no_overflow(page, width: int) -> None:
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert scroll <= inner == width, (scroll, inner)


def _shoot(page, shots, name: str, parts: tuple[str, ...] = ()) -> None:
    """The whole page at each width, and close-ups of ``parts`` (ids) to look at."""
    for width_name, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        _no_overflow(page, width)
        page.screenshot(path=shots / f"{name}-{width_name}.png", full_page=True)
        for part in parts:
            page.locator(f"#{part}").screenshot(path=shots / f"{name}-{width_name}-{part}.png")
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


def test_preference_forms_by_keyboard_in_a_real_browser(live, backend) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / "preferences" / backend
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customers = {}
        for lang in TEXTS:
            cid = granted_newsletter(session, runtime)
            factories.record_consent(session, runtime, cid, "personalised_offers")
            customers[lang] = cid
        issuer = factories.auth_headers(session, runtime, "selfservice:issue")
        consent_reader = factories.auth_headers(session, runtime, "consent:read")
    api = httpx.Client(base_url=server.url, timeout=10)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for lang, t in TEXTS.items():
            cid = customers[lang]
            link = api.post(f"/v1/customers/{cid}/selfservice-link", headers=issuer)
            assert link.status_code == 202
            context = browser.new_context(
                locale=t["locale"], viewport={"width": WIDTHS["desktop"], "height": 900}
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            failed: list[str] = []  # every answer >= 400 but the favicon the browser asks for
            page.on(
                "response",
                lambda r, failed=failed: (
                    failed.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            page.goto(server.url + mailed_link(runtime, link.json()["mail_id"]))
            page.goto(f"{server.url}/me/consents?lang={lang}")
            expect(page.locator("html")).to_have_attribute("lang", lang)
            summary = page.locator("#sum-newsletter")
            expect(summary).to_contain_text(t["start"])
            expect(page.locator("#na-push_notifications")).to_be_visible()
            assert _labelled_controls_problems(page) == []
            _shoot(page, shots, f"{lang}-1-before", PARTS)

            # 1. the topic wine off: Tab to its checkbox, Space, Tab to the form's button, Enter
            wine = page.locator("#tp-newsletter-wine")
            expect(wine).to_be_checked()
            _tab_to(page, "#tp-newsletter-wine")
            page.keyboard.press("Space")
            expect(wine).not_to_be_checked()
            _tab_to(page, 'form[action="/me/preferences/newsletter/topics"] button')
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_contain_text(t["saved"])
            expect(summary).to_contain_text(t["no_wine"])
            expect(page.locator("#tp-newsletter-wine")).not_to_be_checked()
            prefs = api.get(f"/v1/customers/{cid}/preferences", headers=consent_reader).json()
            assert prefs["topics"]["newsletter"]["wine"] is False
            assert prefs["topics"]["newsletter"]["recipes"] is True

            # 2. monthly: Tab reaches the chosen radio, an arrow key moves the choice
            _tab_to(page, "#fq-newsletter-weekly")
            page.keyboard.press("ArrowDown")
            expect(page.locator("#fq-newsletter-monthly")).to_be_checked()
            _tab_to(page, 'form[action="/me/preferences/newsletter/frequency"] button')
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_contain_text(t["saved"])
            expect(summary).to_contain_text(t["monthly"])
            expect(page.locator("#fq-newsletter-monthly")).to_be_checked()
            prefs = api.get(f"/v1/customers/{cid}/preferences", headers=consent_reader).json()
            assert prefs["frequency"]["newsletter"] == "monthly"

            # 3. pause until tomorrow: the date input suggests tomorrow; Tab to "pause", Enter
            tomorrow = page.locator("#pause-until").input_value()
            _tab_to(page, ".pause-form button")
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_contain_text(t["pause_saved"])
            expect(summary).to_contain_text(t["paused"])
            expect(summary).to_contain_text(t["paused_rest"])
            prefs = api.get(f"/v1/customers/{cid}/preferences", headers=consent_reader).json()
            assert prefs["paused_until"] is not None
            assert page.locator(".pause-end button").count() == 1
            assert tomorrow == page.locator("#pause-until").get_attribute("min")
            assert _labelled_controls_problems(page) == []
            # three ledger events, each the customer's own on /me, the IP truncated on write
            with Session(reader(runtime.engine)) as session:
                events = session.execute(
                    select(PreferenceEvent).where(PreferenceEvent.customer_id == cid)
                ).scalars()
                rows = [(e.channel, e.recorded_by, e.evidence.get("ip")) for e in events]
            assert rows == [("selfservice", f"customer:{cid}", "127.0.0.0/24")] * 3
            _shoot(page, shots, f"{lang}-2-after", PARTS)

            # the unsubscribe page offers /me for fewer mails, and nothing there changes them
            token = tokens.for_index_key(runtime.envelope.keys.index_key).make(cid, "newsletter")
            page.goto(f"{server.url}/unsubscribe/{token}?lang={lang}")
            fewer = page.get_by_role("link", name=t["change"])
            expect(fewer).to_have_attribute("href", f"/me?lang={lang}")
            _shoot(page, shots, f"{lang}-3-unsubscribe")
            assert failed == []
            context.close()
        browser.close()
    pages = len(TEXTS) * 3 * len(WIDTHS)
    assert len(list(shots.glob("*.png"))) == pages + len(TEXTS) * 2 * len(WIDTHS) * len(PARTS)
