"""Acceptance test of the self-service page in a real browser: Playwright (sync API) drives
Debian's Chromium (/usr/bin/chromium) against a real server (uvicorn in a thread, a free port
on 127.0.0.1, the test's own database and data directory).

Screenshots of every page go to ``tests/selfservice/artifacts/<backend>/`` (git-ignored), or to
``$VAULT_TEST_ARTIFACTS`` when set. Without Chromium or Playwright the test is skipped locally
and fails under ``CI=true``. Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlmodel import Session

from tests import factories
from tests.selfservice.helpers import mailed_link
from vault.app import create_app
from vault.config import Settings
from vault.db import reader
from vault.runtime import Runtime

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(os.environ.get("VAULT_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    """Skip locally, fail under CI, when Playwright or Chromium is missing."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the Python package playwright is not installed"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"browser tests need a browser under CI: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, runtime: Runtime, port: int):
        config = uvicorn.Config(
            create_app(runtime), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live(db_url: str, data_dir: Path) -> Iterator[tuple[Runtime, Server]]:
    _require_browser()
    port = _free_port()
    settings = Settings(
        data_dir=data_dir,
        database_url=db_url,
        public_url=f"http://127.0.0.1:{port}",
        audit_seal_interval=0,
        _env_file=None,
    )
    runtime = Runtime.build(settings)
    try:
        with Server(runtime, port) as server:
            yield runtime, server
    finally:
        runtime.engine.dispose()


def _labelled_controls_problems(page) -> list[str]:
    """Controls without an accessible name (visible inputs need a <label for>, buttons and
    links text or aria-label)."""
    return page.evaluate(
        """() => {
      const out = [];
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.type === 'hidden') continue;
        const label = el.id && document.querySelector(`label[for="${el.id}"]`);
        if (!label && !el.getAttribute('aria-label')) out.push(el.outerHTML);
      }
      for (const el of document.querySelectorAll('button, a')) {
        if (!el.textContent.trim() && !el.getAttribute('aria-label')) out.push(el.outerHTML);
      }
      return out;
    }"""
    )


def test_customer_manages_data_in_a_real_browser(live, backend) -> None:
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / backend
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customer = factories.create_customer(
            session,
            runtime,
            first_name="Erika",
            last_name="Mustermann",
            birth_date="1984-05-17",
            postal_code="10115",
            loyalty_points=1250,
        )
        issuer = factories.auth_headers(session, runtime, "selfservice:issue")
        crm, _ = factories.create_client(
            session,
            runtime,
            scopes=["data:read"],
            purposes=["personalised_offers"],
            name="CRM Angebote",
        )
        reader_headers = {"Authorization": f"Bearer {factories.token(runtime, crm)}"}
    api = httpx.Client(base_url=server.url, timeout=10)
    data_url = f"/v1/customers/{customer.id}/data?purpose=personalised_offers"

    link = api.post(f"/v1/customers/{customer.id}/selfservice-link", headers=issuer)
    assert link.status_code == 202
    url = server.url + mailed_link(runtime, link.json()["mail_id"])

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(
            locale="de-DE", accept_downloads=True, viewport={"width": 1100, "height": 900}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))

        # 1. open the link: a session starts and the token leaves the address bar
        page.goto(url)
        assert page.url == server.url + "/me"
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.get_by_role("heading", level=1)).to_have_text("Übersicht")
        expect(page.get_by_text("Hallo Erika!")).to_be_visible()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["vault_session"]["httpOnly"] is True
        assert cookies["vault_session"]["sameSite"] == "Lax"
        assert set(cookies) == {"vault_session"}  # nothing but the strictly necessary cookie
        # keyboard: the first Tab reaches the skip link, with a visible focus ring
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => [document.activeElement.className, "
            "getComputedStyle(document.activeElement).outlineStyle]"
        )
        assert focused == ["skip", "solid"]
        page.screenshot(path=shots / "01-overview.png", full_page=True)

        # 2. see the data
        page.get_by_role("link", name="Meine Daten", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Meine Daten")
        expect(page.locator("dl.data")).to_contain_text("Erika")
        expect(page.locator("dl.data")).to_contain_text("17.05.1984")  # German date
        expect(page.locator("dl.data")).to_contain_text("1.250")  # German number format
        assert _labelled_controls_problems(page) == []
        page.screenshot(path=shots / "02-data.png", full_page=True)

        # 3. switch a consent on (by keyboard), off (by mouse), on again: the API follows at once
        page.get_by_role("link", name="Meine Einwilligungen").first.click()
        assert api.get(data_url, headers=reader_headers).status_code == 403
        switch_on = page.get_by_role("switch", name="Einschalten: Persönliche Angebote")
        expect(switch_on).to_have_attribute("aria-checked", "false")
        switch_on.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("Persönliche Angebote")
        switch_off = page.get_by_role("switch", name="Ausschalten: Persönliche Angebote")
        expect(switch_off).to_have_attribute("aria-checked", "true")
        granted = api.get(data_url, headers=reader_headers)
        assert granted.status_code == 200
        assert granted.json()["attributes"]["birth_date"] == "1984"
        assert _labelled_controls_problems(page) == []
        page.screenshot(path=shots / "03-consents-on.png", full_page=True)

        switch_off.click()  # withdrawing: exactly one click, as granting
        expect(page.get_by_role("switch", name="Einschalten: Persönliche Angebote")).to_be_visible()
        denied = api.get(data_url, headers=reader_headers)
        assert denied.status_code == 403
        assert denied.json()["error"] == "consent_withdrawn"
        page.screenshot(path=shots / "04-consents-off.png", full_page=True)

        page.get_by_role("switch", name="Einschalten: Persönliche Angebote").click()
        expect(page.get_by_role("switch", name="Ausschalten: Persönliche Angebote")).to_be_visible()
        assert api.get(data_url, headers=reader_headers).status_code == 200

        # double opt-in: the newsletter waits for the confirmation
        page.get_by_role("switch", name="Einschalten: Newsletter").click()
        expect(page.locator("#s-newsletter")).to_contain_text("Wartet auf Ihre Bestätigung")

        # 4. who used my data: the CRM's reads above, in plain words
        page.get_by_role("link", name="Wer hat meine Daten genutzt").first.click()
        table = page.get_by_role("table")
        expect(table).to_contain_text("CRM Angebote")
        expect(table).to_contain_text("Persönliche Angebote")
        expect(table).to_contain_text("Geburtsdatum")
        page.screenshot(path=shots / "05-activity.png", full_page=True)

        # 5. change the language: the switch is on every page and is remembered
        page.get_by_role("link", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_role("heading", level=1)).to_have_text("Who used my data")
        expect(page.get_by_role("table")).to_contain_text("Personalised offers")
        page.get_by_role("link", name="My data", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("My data")
        expect(page.locator("dl.data")).to_contain_text("Date of birth")
        page.screenshot(path=shots / "06-data-en.png", full_page=True)

        # 6. download the export: a button (a POST with the CSRF token), not a link
        expect(page.get_by_role("link", name="Download my data (JSON)")).to_have_count(0)
        with page.expect_download() as download_info:
            page.get_by_role("button", name="Download my data (JSON)").click()
        download = download_info.value
        assert download.suggested_filename == "my-data.json"
        document = json.loads(Path(download.path()).read_text())
        assert document["customer"]["id"] == str(customer.id)
        values = {a["name"]: a["value"] for a in document["attributes"]}
        assert values["first_name"] == "Erika"
        assert {c["purpose"]: c["status"] for c in document["consents"]}[
            "personalised_offers"
        ] == "granted"

        # 7. erase, after a clear confirmation step
        page.get_by_role("link", name=re.compile("^Erase my data")).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Erase my data")
        assert _labelled_controls_problems(page) == []
        page.screenshot(path=shots / "07-erase-confirm.png", full_page=True)
        page.get_by_label("Yes, I want all my data to be erased permanently.").check()
        page.get_by_role("button", name="Erase my data now").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your data has been erased")
        page.screenshot(path=shots / "08-erased.png", full_page=True)

        # ... and the session, the used link and any new link stop working
        response = page.goto(server.url + "/me")  # no session: the "send me a link" form
        assert response is not None and response.status == 200
        expect(page.get_by_label("Your e-mail address")).to_be_visible()  # lang: en by now
        response = page.goto(url)
        assert response is not None and response.status == 410
        page.screenshot(path=shots / "09-link-used.png", full_page=True)
        again = api.post(f"/v1/customers/{customer.id}/selfservice-link", headers=issuer)
        assert again.status_code == 410
        assert api.get(data_url, headers=reader_headers).status_code == 410

        assert not [m for m in console if "Content Security Policy" in m], console
        context.close()
        browser.close()
    api.close()
    assert len(list(shots.glob("*.png"))) >= 9


# Issue 17 item 12: what a customer reads, at desktop and phone width, in both languages.
WIDTHS = {"desktop": 1280, "phone": 390}
LAYOUT_PAGES = {
    "overview": "/me",
    "consents": "/me/consents",
    "data": "/me/data",
    "activity": "/me/activity",
    "erase": "/me/erase",
}
READABLE = {
    # attribute: (what is stored, German, English)
    "gender": ("not_stated", "keine Angabe", "not stated"),
    "preferred_language": ("en", "Englisch", "English"),
    "country": ("DE", "Deutschland", "Germany"),
    "birth_date": ("1984-05-17", "17.05.1984", "May 17, 1984"),
}


def test_pages_read_well_at_desktop_and_phone_width_in_both_languages(live, backend) -> None:
    """Labels instead of stored codes, dates in the page's language, a pending double opt-in
    that reads as pending, consent cards that say an objection to direct marketing stops
    them, no sideways scrolling at 390 px, and a link clicked again leads back to /me.
    Screenshots of every page (desktop and phone, de and en) go to the artifacts."""
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / backend / "layout"
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        customer = factories.create_customer(
            session,
            runtime,
            email="erika.mustermann-schulze.langer-name@beispiel-verlag.example",
            first_name="Erika",
            last_name="Mustermann-Schulze",
            birth_date="1984-05-17",
            street="Lindenstraße 98",
            postal_code="10115",
            city="Berlin",
            country="DE",
            gender="not_stated",
            preferred_language="en",
            favourite_categories="Schokolade, Bio, Kaffee",
            loyalty_number="TE10000000",
            loyalty_points=1250,
        )
        for purpose in ("personalised_offers", "newsletter"):  # the newsletter: double opt-in
            factories.record_consent(session, runtime, customer.id, purpose)
        issuer = factories.auth_headers(session, runtime, "selfservice:issue")
        crm, _ = factories.create_client(
            session,
            runtime,
            scopes=["data:read"],
            purposes=["personalised_offers"],
            name="CRM Angebote und Gutscheine (Kundenservice-System)",
        )
        reader_headers = {"Authorization": f"Bearer {factories.token(runtime, crm)}"}
    api = httpx.Client(base_url=server.url, timeout=10)
    data_url = f"/v1/customers/{customer.id}/data?purpose=personalised_offers"
    for _ in range(2):  # "who used my data" has rows
        assert api.get(data_url, headers=reader_headers).status_code == 200
    mail_id = api.post(f"/v1/customers/{customer.id}/selfservice-link", headers=issuer).json()[
        "mail_id"
    ]
    url = server.url + mailed_link(runtime, mail_id)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        page.goto(url)
        assert page.url == server.url + "/me"

        # the pending newsletter reads as pending on the overview and on its card
        expect(page.locator(".cards")).to_contain_text("Wartet auf Ihre Bestätigung: Newsletter")
        page.goto(server.url + "/me/consents")
        card = page.locator("#p-newsletter")
        expect(card.locator("h3")).to_contain_text("wartet auf Ihre Bestätigung")
        expect(card.get_by_role("switch")).to_have_count(0)  # neither on nor off
        expect(card.get_by_role("button", name="Anfrage zurückziehen: Newsletter")).to_be_visible()

        # an objection to direct marketing: the affected consent cards say so
        page.get_by_role("button", name="Der Direktwerbung widersprechen").click()
        for purpose in ("personalised_offers", "newsletter", "push_notifications"):
            expect(page.locator(f"#p-{purpose}")).to_contain_text(
                "Sie haben der Direktwerbung widersprochen"
            )
        expect(page.locator("#p-dietary_recommendations")).not_to_contain_text("widersprochen")
        assert api.get(data_url, headers=reader_headers).json()["error"] == "objected"

        for lang in ("de", "en"):
            for width_name, width in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": 900})
                for name, path in LAYOUT_PAGES.items():
                    page.goto(f"{server.url}{path}?lang={lang}")
                    expect(page.locator("html")).to_have_attribute("lang", lang)
                    scroll, inner = page.evaluate(
                        "() => [document.documentElement.scrollWidth, window.innerWidth]"
                    )
                    assert scroll <= inner, (lang, width_name, name, scroll, inner)
                    page.screenshot(path=shots / f"{lang}-{width_name}-{name}.png", full_page=True)
            page.goto(f"{server.url}/me/data?lang={lang}")
            shown = page.locator("dl.data").inner_text()
            for stored, de, en in READABLE.values():
                assert (de if lang == "de" else en) in shown, (lang, shown)
                assert stored not in shown.split(), (lang, stored)
            page.goto(f"{server.url}/me/consents?lang={lang}")
            pending = "waiting for your confirmation" if lang == "en" else "wartet auf Ihre"
            expect(page.locator("#p-newsletter h3")).to_contain_text(pending)

        # the e-mail's link clicked again in this browser: back to /me, no error page
        page.goto(url)
        assert page.url == server.url + "/me"
        expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

        assert not [m for m in console if "Content Security Policy" in m], console
        context.close()
        browser.close()
    api.close()
    assert len(list(shots.glob("*.png"))) == 2 * len(WIDTHS) * len(LAYOUT_PAGES)
