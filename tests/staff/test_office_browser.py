"""The privacy office in Chromium (Playwright, /usr/bin/chromium, a real server): a privacy
officer signs in with password and TOTP, sees the overdue request marked and listed first,
and closes it. Screenshots of every office page (de and en, 1280 and 390 px wide) go to
``$VAULT_TEST_SHOTS`` (default ``/tmp/shots``) as ``office-<page>-<lang>-<width>.png``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from tests import factories
from tests.selfservice.test_browser import CHROMIUM, CHROMIUM_ARGS, _labelled_controls_problems
from tests.selfservice.test_browser import live as live
from tests.staff.helpers import make_staff
from vault import demo
from vault.consent.store import ConsentState
from vault.db import reader
from vault.dsr import requests as dsr_requests
from vault.dsr.models import DataSubjectRequest
from vault.preferences import service as preferences_service
from vault.provenance import Caller

SHOTS = Path(os.environ.get("VAULT_TEST_SHOTS", "/tmp/shots"))
pytestmark = pytest.mark.slow


def _arrange(runtime):
    demo.run(runtime, customers=80, seed=7)  # a real ledger for the charts
    now = datetime.now(UTC)
    with Session(reader(runtime.engine), expire_on_commit=False) as s:
        customer = factories.create_customer(s, runtime, first_name="Erika")
        ids = {}
        for name, kind, days in (("late", "access", 41), ("fresh", "erasure", 5)):
            ids[name] = dsr_requests.create_request(
                session=s,
                customer_id=customer.id,
                kind=kind,
                by=Caller("client:test"),
                received_at=now - timedelta(days=days),
                now=now,
            ).id
        s.commit()
        # preference changes of some demo customers who granted personalised offers, at four
        # touchpoints, for the preference charts
        granted = s.execute(
            select(ConsentState.customer_id)
            .where(ConsentState.purpose == "personalised_offers", ConsentState.status == "granted")
            .order_by(ConsentState.customer_id)
            .limit(8)
        ).scalars()
        for n, cid in enumerate(granted):
            channel = ("web", "call_center", "store", "app")[n % 4]
            change: dict = {"topics": {"personalised_offers": {"loyalty": n % 2 == 1}}}
            if n % 3 == 0:
                change["frequency"] = {"personalised_offers": "monthly"}
            if n == 5:
                change["contact_channels"] = {"push": False}
                change["paused_until"] = now + timedelta(days=14)
            preferences_service.change(
                session=s,
                policy=runtime.policy,
                customer_id=cid,
                change=change,
                channel=channel,
                by=Caller("client:test"),
                actor="staff:test" if channel in ("store", "call_center") else "customer",
                now=now - timedelta(days=7 * (n % 3)),
            )
        s.commit()
    return customer.id, ids


def _shots(page, base: str, pages: dict[str, str]) -> None:
    """Every page in ``pages``, de and en, 1280 and 390 px wide, with no sideways scrolling."""
    from playwright.sync_api import expect

    for lang in ("de", "en"):
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in pages.items():
                sep = "&" if "?" in path else "?"
                page.goto(f"{base}{path}{sep}lang={lang}")
                expect(page.locator("html")).to_have_attribute("lang", lang)
                page.screenshot(path=SHOTS / f"office-{name}-{lang}-{width}.png", full_page=True)
                overflow = page.evaluate(
                    "() => [document.documentElement.scrollWidth - window.innerWidth,"
                    " [...document.querySelectorAll('main *')].filter(e =>"
                    " e.getBoundingClientRect().right > window.innerWidth + 1)"
                    ".slice(0, 3).map(e => e.tagName + '#' + e.id + '.' + e.className)]"
                )
                assert overflow[0] <= 0, (name, lang, width, overflow)


def test_privacy_officer_closes_an_overdue_request_in_a_real_browser(live, backend):
    from playwright.sync_api import expect, sync_playwright

    runtime, server = live
    officer = make_staff(runtime, "privacy_officer")
    customer_id, ids = _arrange(runtime)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

        # sign in: password and TOTP code
        page.goto(server.url + "/staff")
        page.get_by_label("Name").fill(officer.name)
        page.get_by_label("Passwort").fill(officer.password)
        page.get_by_label("Code aus Ihrer Authenticator-App").fill(officer.code())
        page.get_by_role("button", name="Anmelden").click()
        page.get_by_role("link", name="Datenschutz", exact=False).first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Datenschutz")
        expect(page.locator("section", has_text="Überfällige Anträge")).to_contain_text("⚠")

        # the queue: the overdue request first and marked (in words, not colour alone)
        page.goto(server.url + "/staff/office/requests")
        rows = page.locator("table.queue tbody tr")
        expect(rows).to_have_count(2)
        assert rows.nth(0).get_attribute("data-request") == str(ids["late"])
        assert rows.nth(0).get_attribute("class") == "overdue"
        expect(rows.nth(0)).to_contain_text("überfällig")
        expect(rows.nth(1)).not_to_contain_text("überfällig")
        assert _labelled_controls_problems(page) == []

        # the overdue request as it shows before it is closed, de and en, desktop and phone
        before = {
            "home-overdue": "/staff/office",
            "queue-overdue": "/staff/office/requests",
            "request-overdue": f"/staff/office/requests/{ids['late']}",
        }
        _shots(page, server.url, before)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(server.url + "/staff/office/requests?lang=de")
        rows = page.locator("table.queue tbody tr")

        # close it
        rows.nth(0).get_by_role("link").first.click()
        expect(page.locator("dl.facts")).to_contain_text("überfällig")
        page.get_by_label("erledigt", exact=True).check()
        page.locator("#close-reason").select_option("fulfilled")
        page.get_by_role("button", name="Antrag abschließen").click()
        expect(page.get_by_role("status")).to_have_text("Der Antrag wurde abgeschlossen.")
        expect(page.locator("dl.facts")).not_to_contain_text("überfällig")
        with Session(reader(runtime.engine)) as s:
            row = s.get(DataSubjectRequest, ids["late"])
            assert (row.status, row.close_reason) == ("completed", "fulfilled")
            assert row.handled_by == f"staff:{officer.id}"
        page.goto(server.url + "/staff/office/requests")
        expect(page.locator("table.queue tbody tr")).to_have_count(1)

        # every page, de and en, desktop and phone
        pages = {
            "home": "/staff/office",
            "requests": "/staff/office/requests?status=all",
            "request": f"/staff/office/requests/{ids['fresh']}",
            "customer": f"/staff/office/customers/{customer_id}",
            "erase": f"/staff/office/customers/{customer_id}/erase",
            "rates": "/staff/office/rates?weeks=52",
            "health": "/staff/office/health",
        }
        _shots(page, server.url, pages)
        # the rates page: three consent charts drawn from the demo ledger, one topic chart per
        # purpose with topics, preference changes per touchpoint and per week
        with_topics = sum(1 for p in runtime.policy.purposes.values() if p.topics)
        for lang, width in (("de", 1280), ("en", 390)):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(server.url + f"/staff/office/rates?weeks=12&lang={lang}")
            charts = page.locator("svg.chart")
            expect(charts).to_have_count(3 + with_topics + 2)
            page.screenshot(path=SHOTS / f"officeprefs-rates-{lang}-{width}.png", full_page=True)
            prefs = page.locator("section[aria-labelledby=prefs-h]")
            prefs.locator("details").first.evaluate("d => d.open = true")
            prefs.screenshot(path=SHOTS / f"officeprefs-prefs-{lang}-{width}.png")
            wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, (lang, width, wide)
        assert page.locator("svg.chart rect[data-count]").count() > 5
        assert page.locator("#prefs-channel rect[data-series='topics']").count() >= 4
        assert [u for u in missing if not u.endswith("/favicon.ico")] == []
        assert [e for e in errors if "404" not in e] == []
        browser.close()
