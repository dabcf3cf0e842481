"""The printable dossier in Chromium: desktop (1280) and phone (390) in de and en, and the print
layout (Chromium's PDF, rendered to PNG by pdftoppm when it is there). Screenshots go to
``tests/selfservice/artifacts/dossier/`` (git-ignored) to be looked at."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlmodel import Session

from tests.consent.test_dossier import EMAIL, _confirm_with_evidence
from tests.factories import auth_headers, create_customer, record_consent
from tests.mail.helpers import drain, enqueue
from tests.selfservice.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, live  # noqa: F401
from vault.mail.delivery import Deliverer

pytestmark = pytest.mark.slow


def _failed(errors: list[str], response) -> None:
    if response.status >= 400 and not response.url.endswith("/favicon.ico"):
        errors.append(response.url)


def _refused(errors: list[str], message) -> None:
    if "Refused" in message.text:  # a Content-Security-Policy refusal
        errors.append(message.text)


def test_the_dossier_page_in_chromium(live, monkeypatch, backend):  # noqa: F811
    from playwright.sync_api import sync_playwright

    runtime, server = live
    with Session(runtime.engine, expire_on_commit=False) as s:
        c = create_customer(s, runtime, email=EMAIL)
        s.commit()
        pending = record_consent(
            s, runtime, c.id, "newsletter", late_import=False, token_to_caller=True
        )
        mail_id = enqueue(runtime, c.id, to=EMAIL)
        assert drain(Deliverer(runtime)) == 1
        evidence = {
            "mail_id": str(mail_id),
            "ip": "203.0.113.0/24",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        }
        _confirm_with_evidence(monkeypatch, s, runtime, pending.confirmation_token, evidence)
        record_consent(s, runtime, c.id, "personalised_offers", late_import=False)
        record_consent(s, runtime, c.id, "third_party_ads", "refused", late_import=False)
        headers = auth_headers(s, runtime, "consent:read")
        s.commit()

    shots = ARTIFACTS / "dossier" / backend
    shots.mkdir(parents=True, exist_ok=True)
    url = f"{server.url}/v1/customers/{c.id}/consents/dossier"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for lang in ("de", "en"):
            for width, height in ((1280, 900), (390, 844)):
                context = browser.new_context(
                    viewport={"width": width, "height": height},
                    extra_http_headers={**headers, "Accept": "text/html"},
                )
                page = context.new_page()
                errors: list[str] = []
                page.on("response", lambda r, errors=errors: _failed(errors, r))
                page.on("console", lambda m, errors=errors: _refused(errors, m))
                r = page.goto(f"{url}?lang={lang}")
                assert r is not None and r.status == 200
                h1 = page.locator("h1").inner_text()
                assert h1 == ("Einwilligungsnachweis" if lang == "de" else "Consent dossier")
                # the stylesheets loaded (no CSP refusal, nothing from elsewhere)
                assert errors == [], errors
                assert page.evaluate("document.styleSheets.length") == 2
                # nothing wider than the screen
                wide = page.evaluate(
                    "[...document.querySelectorAll('main *')].filter(e => e.scrollWidth > "
                    f"{width}).map(e => e.tagName + '.' + e.className).slice(-3)"
                )
                assert not wide, wide
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=shots / f"dossier-{lang}-{width}.png", full_page=True)
                if width == 1280:
                    pdf = shots / f"dossier-{lang}-print.pdf"
                    page.emulate_media(media="print")
                    page.pdf(path=str(pdf), format="A4", print_background=False)
                    if shutil.which("pdftoppm"):
                        subprocess.run(
                            ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(pdf),
                             str(shots / f"dossier-{lang}-print")],
                            check=True,
                        )  # fmt: skip
                context.close()
        browser.close()
