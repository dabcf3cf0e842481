"""Acceptance test of the auditor's console in a real browser (Playwright, Debian's Chromium,
a real server on a free port; see tests/selfservice/test_browser.py): sign in with password and
TOTP, verify the audit log (ok), tamper with a row as a DBA would, verify again (the first bad
seq is shown). Screenshots (desktop 1280 px and phone 390 px, German and English) go to
``$VAULT_TEST_SHOTS`` (default /tmp/shots) as ``staff-*.png``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.audit.helpers import seal, tamper, write
from tests.selfservice.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    _free_port,
    _labelled_controls_problems,
    _require_browser,
)
from tests.staff.helpers import make_staff
from vault.config import Settings
from vault.runtime import Runtime

SHOTS = Path(os.environ.get("VAULT_TEST_SHOTS", "/tmp/shots"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


@pytest.fixture
def live(db_url: str, data_dir: Path):
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


def _shot(page, name: str, backend: str) -> None:
    if backend == "sqlite":  # one set of screenshots is enough
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"staff-{name}.png", full_page=True)


def _no_horizontal_scroll(page) -> bool:
    """The page itself never scrolls sideways (a wide table scrolls inside its box)."""
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_auditor_signs_in_with_totp_and_verifies_the_log(live, backend) -> None:
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    auditor = make_staff(runtime, "auditor", name="pruefer.anke")
    write(runtime, 12)
    seal(runtime)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(locale="de-DE", viewport=DESKTOP)
        page = context.new_page()
        page.set_default_timeout(15_000)
        scripts: list[str] = []
        page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else 0)

        # 1. sign in: name, password, the authenticator's code
        page.goto(server.url + "/staff")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Anmeldung zur Mitarbeiterkonsole"
        )
        assert _labelled_controls_problems(page) == []
        _shot(page, "login-de-1280", backend)
        page.get_by_label("Name").fill(auditor.name)
        page.get_by_label("Passwort").fill(auditor.password)
        page.get_by_label("Code aus Ihrer Authenticator-App").fill("000000")
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("alert")).to_contain_text("stimmen nicht")
        _shot(page, "login-refused-de-1280", backend)
        page.get_by_label("Name").fill(auditor.name)
        page.get_by_label("Passwort").fill(auditor.password)
        page.get_by_label("Code aus Ihrer Authenticator-App").fill(auditor.code())
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mitarbeiterkonsole")
        expect(page.get_by_text("Angemeldet als pruefer.anke, Rolle: Prüfung.")).to_be_visible()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["vault_staff_session"]["httpOnly"] is True
        assert cookies["vault_staff_session"]["sameSite"] == "Strict"
        _shot(page, "home-de-1280", backend)

        # 2. the audit log, then verify: intact
        page.get_by_role("link", name="Audit-Protokoll").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Audit-Protokoll")
        expect(page.get_by_role("table")).to_contain_text("staff.login")
        expect(page.get_by_role("table")).to_contain_text(f"staff:{auditor.id}")
        assert _labelled_controls_problems(page) == []
        _shot(page, "audit-de-1280", backend)
        page.get_by_role("button", name="Audit-Protokoll prüfen").click()
        expect(page.get_by_role("status")).to_contain_text("Das Audit-Protokoll ist unversehrt.")
        expect(page.locator("#first-bad-seq")).to_have_text("\u2013")
        assert int(page.locator("#checked").inner_text()) >= 12
        _shot(page, "verify-ok-de-1280", backend)

        # 3. a DBA changes row 4: verification names it
        with tamper(runtime) as conn:
            conn.execute(text("UPDATE audit_event SET outcome = 'denied' WHERE seq = 4"))
        page.get_by_role("link", name="Zurück zum Audit-Protokoll").click()
        page.get_by_role("button", name="Audit-Protokoll prüfen").click()
        expect(page.get_by_role("alert")).to_contain_text("manipuliert")
        expect(page.locator("#first-bad-seq")).to_have_text("4")
        expect(page.locator("#checked")).to_have_text("3")
        _shot(page, "verify-tampered-de-1280", backend)

        # 4. English, filters kept by the language switch
        page.goto(server.url + "/staff/audit?action=staff.*")
        page.get_by_role("link", name="English").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.get_by_label("Action")).to_have_value("staff.*")
        expect(page.get_by_role("table")).not_to_contain_text("data.read")
        _shot(page, "audit-en-1280", backend)
        page.get_by_role("button", name="Verify the audit log").click()
        expect(page.get_by_role("alert")).to_contain_text("The audit log has been tampered with.")
        _shot(page, "verify-tampered-en-1280", backend)

        # 5. a phone: the signed-in pages and the sign-in form, both languages
        phone = browser.new_context(
            locale="de-DE", viewport=PHONE, storage_state=context.storage_state()
        )
        small = phone.new_page()
        for lang in ("de", "en"):
            small.goto(server.url + f"/staff/audit?lang={lang}")
            assert _no_horizontal_scroll(small)
            _shot(small, f"audit-{lang}-390", backend)
            small.locator("form[action='/staff/audit/verify'] button").click()
            _shot(small, f"verify-tampered-{lang}-390", backend)
        anonymous = browser.new_context(locale="de-DE", viewport=PHONE).new_page()
        for lang in ("de", "en"):
            anonymous.goto(server.url + f"/staff?lang={lang}")
            assert _no_horizontal_scroll(anonymous)
            _shot(anonymous, f"login-{lang}-390", backend)

        # 6. sign out: the session ends
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
        page.goto(server.url + "/staff/audit")
        assert page.url == server.url + "/staff"
        _shot(page, "login-en-1280", backend)
        assert scripts == []  # no JavaScript anywhere
        browser.close()
