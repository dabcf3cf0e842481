"""The one-click unsubscribe page in a real browser (Chromium through Playwright, like
test_browser.py): the export's link, GET shows the button and changes nothing, the button
withdraws; screenshots at 1280 and 390 px, de and en, into ``artifacts/<backend>/``."""

from __future__ import annotations

import httpx
import orjson
from sqlmodel import Session

from tests import factories
from tests.selfservice.test_browser import (  # noqa: F401 (the live fixture)
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _labelled_controls_problems,
    live,
    pytestmark,
)
from vault.db import reader

PURPOSE = "personalised_offers"


def test_unsubscribe_page_in_a_real_browser(live, backend) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / backend
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customers = [factories.create_customer(session, runtime) for _ in range(2)]
        for c in customers:
            factories.record_consent(session, runtime, c.id, PURPOSE)
        headers = factories.auth_headers(session, runtime, "data:read", purposes=[PURPOSE])
    api = httpx.Client(base_url=server.url, timeout=10)
    rows = {
        d["customer_id"]: d
        for d in map(
            orjson.loads,
            api.get(
                f"/v1/purposes/{PURPOSE}/audience",
                headers=headers,
                params={"contact_channel": "email"},
            ).content.splitlines(),
        )
    }

    def read(customer) -> int:
        return api.get(
            f"/v1/customers/{customer.id}/data", params={"purpose": PURPOSE}, headers=headers
        ).status_code

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for customer, lang, title, button, done in (
            (customers[0], "de", "Abmelden", "Abmelden", "Sie sind abgemeldet"),
            (customers[1], "en", "Unsubscribe", "Unsubscribe", "You are unsubscribed"),
        ):
            url = rows[str(customer.id)]["unsubscribe_url"]
            assert url.startswith(server.url + "/unsubscribe/")
            for width in (1280, 390):
                context = browser.new_context(
                    locale="de-DE" if lang == "de" else "en-GB",
                    viewport={"width": width, "height": 800},
                )
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto(url)
                expect(page.locator("html")).to_have_attribute("lang", lang)
                expect(page.get_by_role("heading", level=1)).to_have_text(title)
                assert _labelled_controls_problems(page) == []
                # nothing wider than the window on a phone
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=shots / f"unsubscribe-{lang}-{width}.png", full_page=True)
                assert read(customer) == 200  # the GET changed nothing
                assert context.cookies() == []  # and set no cookie
                if width == 390:
                    page.get_by_role("button", name=button).click()
                    expect(page.get_by_role("heading", level=1)).to_have_text(done)
                    page.screenshot(
                        path=shots / f"unsubscribe-{lang}-{width}-done.png", full_page=True
                    )
                    assert read(customer) == 403
                context.close()
        browser.close()
