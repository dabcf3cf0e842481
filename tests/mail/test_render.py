"""Templates: text and HTML, German and English from the catalogues, escaped, nothing remote."""

from __future__ import annotations

import re

import pytest

from vault.mail.render import LANGUAGES, TEMPLATE_DIR, UnknownTemplate, render, templates


@pytest.mark.parametrize("name", templates())
def test_every_template_has_both_parts_and_speaks_each_language(name):
    assert (TEMPLATE_DIR / f"{name}.txt").exists()
    assert (TEMPLATE_DIR / f"{name}.html").exists()
    context = {
        "note": None,
        "url": "https://vault.example/x",
        "minutes": 15,
        "purpose_title": "Newsletter",
        "purpose_description": "News",
        "controller_name": "Tante Emma",
        "controller_address": "",
        "controller_contact": "",
        "valid_days": 7,
        "expires_on": "9.12.2026",
    }
    de, en = (render(name, lang, context) for lang in LANGUAGES)
    assert de.subject != en.subject and de.text != en.text
    assert '<html lang="de">' in de.html and '<html lang="en">' in en.html
    assert "Guten Tag," in de.text and "Hello," in en.text


def test_html_is_escaped_text_is_not_and_the_subject_is_one_line():
    r = render("test_message", "en", {"note": '<script>alert(1)</script> & "x"'})
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html
    assert '<script>alert(1)</script> & "x"' in r.text
    assert "\n" not in r.subject and r.subject == "Consent Vault test message"
    assert "***" in repr(r)


def test_german_is_the_fallback_language():
    assert render("test_message", "fr", {"note": None}).subject == "Testnachricht der Consent Vault"
    assert render("test_message", "EN-us", {"note": None}).subject == "Consent Vault test message"


def test_no_template_loads_anything_remote_or_tracks():
    """No images, scripts, styles or fonts from elsewhere: opening a mail tells nobody."""
    for path in TEMPLATE_DIR.glob("*.html"):
        html = path.read_text()
        assert not re.search(r"<(img|script|link|iframe|object)\b", html, re.I), path.name
        assert "url(" not in html and "@import" not in html, path.name


def test_unknown_templates_are_refused():
    for name in ("nope", "base", "../base", "Test_message"):
        with pytest.raises(UnknownTemplate):
            render(name, "de", {})


def test_a_shown_link_wraps_on_a_phone():
    """A long link shown as text breaks anywhere, or it widens the mail past a 390 px screen
    (seen in Chromium before the rule)."""
    for path in TEMPLATE_DIR.glob("*.html"):
        for line in path.read_text().splitlines():
            if re.search(r">\s*{{ url }}\s*<", line):
                assert "word-break:break-all" in line, (path.name, line)
