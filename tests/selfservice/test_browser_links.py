"""The "send me a link" form on /me in a real browser (Chromium via Playwright): both languages,
desktop (1280 px) and phone (390 px) width, no sideways scrolling, every control labelled; the
mailed link opens /me. Screenshots go to ``tests/selfservice/artifacts/<backend>/links/``."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests import factories
from tests.selfservice.helpers import mailed_link
from tests.selfservice.test_browser import (  # the live server and the browser of test_browser
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    _labelled_controls_problems,
    live,  # noqa: F401  (a fixture)
)
from vault.db import reader
from vault.mail.models import MailMessage

pytestmark = pytest.mark.slow

WIDTHS = {"desktop": 1280, "phone": 390}
TEXTS = {
    "de": ("Ihre E-Mail-Adresse", "Link zuschicken", "Bitte sehen Sie in Ihr E-Mail-Postfach"),
    "en": ("Your e-mail address", "Send me a link", "Please check your e-mail"),
}


def _fits(page) -> None:
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert scroll <= inner, (page.url, scroll, inner)


def test_the_link_form_in_a_real_browser(live, backend) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    shots = ARTIFACTS / backend / "links"
    shots.mkdir(parents=True, exist_ok=True)
    with Session(reader(runtime.engine), expire_on_commit=False) as session:
        factories.create_customer(
            session, runtime, first_name="Erika", email="erika.browser@example.de"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for lang, (label, button, sent) in TEXTS.items():
            for width_name, width in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": 900})
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto(f"{server.url}/me?lang={lang}")
                expect(page.locator("html")).to_have_attribute("lang", lang)
                field = page.get_by_label(label)
                expect(field).to_be_visible()
                assert _labelled_controls_problems(page) == []
                _fits(page)
                page.screenshot(path=shots / f"{lang}-{width_name}-form.png", full_page=True)
                # not an address: the form again, the error announced and tied to the field
                field.fill("erika at example")
                page.evaluate("() => document.querySelector('form.link-form').noValidate = true")
                page.get_by_role("button", name=button).click()
                expect(page.get_by_role("alert")).to_be_visible()
                expect(page.get_by_label(label)).to_have_attribute("aria-invalid", "true")
                _fits(page)
                page.screenshot(path=shots / f"{lang}-{width_name}-error.png", full_page=True)
                page.get_by_label(label).fill(f"nobody.{lang}.{width_name}@example.de")
                page.get_by_role("button", name=button).click()
                expect(page.get_by_role("heading", level=1)).to_have_text(sent)
                _fits(page)
                page.screenshot(path=shots / f"{lang}-{width_name}-sent.png", full_page=True)
                context.close()

        # a known address: the mail's link opens /me in the browser
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{server.url}/me?lang=de")
        page.get_by_label("Ihre E-Mail-Adresse").fill("erika.browser@example.de")
        page.get_by_role("button", name="Link zuschicken").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(TEXTS["de"][2])
        with Session(reader(runtime.engine)) as s:
            mail_ids = list(s.execute(select(MailMessage.id)).scalars())
            s.rollback()
        assert len(mail_ids) == 1  # none for the unknown address, one for Erika
        page.goto(server.url + mailed_link(runtime, mail_ids[0]))
        assert page.url == server.url + "/me"
        expect(page.locator("main")).to_contain_text("Erika")
        context.close()
        browser.close()
    assert len(list(shots.glob("*.png"))) == 3 * len(WIDTHS) * len(TEXTS)
