"""The catalogues of the records-of-processing page are complete and in step with its sources:
the template's {% trans %} blocks and _() calls and the N_() texts of vault/dsr/ropa.py."""

from __future__ import annotations

import re

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from vault.dsr import ropa

JINJA = {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}


def _source_ids() -> set[str]:
    found = extract_from_dir(
        str(ropa.HERE),
        method_map=[("ropa.py", "python"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.html": JINJA},
        keywords={**DEFAULT_KEYWORDS, "N_": None},
    )
    return {message for _file, _line, message, _comments, _ctx in found}


def _catalog(lang: str):
    with (ropa.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def test_babel_cfg_names_the_sources_the_test_extracts():
    cfg = (ropa.HERE / "babel.cfg").read_text(encoding="utf-8")
    assert "[python: vault/dsr/ropa.py]" in cfg
    assert "[jinja2: vault/dsr/templates/**.html]" in cfg and "jinja2.ext.i18n" in cfg


@pytest.mark.parametrize("lang", ropa.LANGUAGES)
def test_each_catalogue_holds_exactly_the_sources_texts(lang):
    ids = _source_ids()
    assert len(ids) >= 40
    assert set(ropa.SECURITY_MEASURES) <= ids and ropa.DATA_SUBJECTS in ids
    assert set(ropa.LEGAL_BASIS_ARTICLE.values()) | {ropa.EXPLICIT_CONSENT_ARTICLE} <= ids
    catalog = _catalog(lang)
    assert {m.id for m in catalog if m.id} == ids
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    assert [(m.id, errors) for m, errors in catalog.check()] == []


def test_german_is_complete_and_no_word_stands_outside_the_catalogue():
    catalog = _catalog("de")
    assert [m.id for m in catalog if m.id and not m.string] == []
    same = [m.id for m in catalog if m.id and m.string == m.id]
    assert same == ["Name"]  # the one word that reads the same in German; nothing else is English
    for path in sorted(ropa.TEMPLATE_DIR.iterdir()):
        source = path.read_text(encoding="utf-8")
        bare = re.sub(r"{% trans\b.*?%}.*?{% endtrans %}", "", source, flags=re.S)
        bare = re.sub(r"{%.*?%}|{{.*?}}", "", bare, flags=re.S)
        bare = re.sub(r"<[^>]*>", "", bare, flags=re.S)
        assert not re.search(r"[^\W\d_]{2,}", bare), (path.name, bare.strip())


def test_the_json_keeps_its_english_texts_and_the_page_translates_them(runtime):
    record = ropa.build(runtime.policy)
    assert record["security_measures"] == ropa.SECURITY_MEASURES
    subjects = record["activities"][0]["data_subjects"]
    assert subjects == {
        "de": "Kundinnen und Kunden (Webshop, App, Filialen, Kundenservice)",
        "en": "Customers (web shop, app, stores, call centre)",
    }
    articles = {a["legal_basis_article"] for a in record["activities"]}
    assert articles <= set(ropa.LEGAL_BASIS_ARTICLE.values()) | {ropa.EXPLICIT_CONSENT_ARTICLE}
    german = ropa.render_html(record, "de")
    english = ropa.render_html(record, "en")
    assert "Kundinnen und Kunden" in german and "Kundinnen" not in english
    assert "Customers (web shop" in english and "Customers (web shop" not in german
    assert "(Art. 6 Abs. 1 lit. b DSGVO)" in german and "(GDPR Art. 6(1)(b))" in english
    assert "(Zweck <code>newsletter</code>, Version " in german
    assert "(purpose <code>newsletter</code>, version " in english
    assert re.search(r"gelöscht \d+ Tage nach der letzten Änderung", german)
    assert re.search(r"deleted \d+ days after its last change", english)
    assert "<td>3650 Tage</td>" in german and "<td>3650 days</td>" in english


def test_a_texts_markup_from_the_record_is_escaped_in_both_languages():
    record = {
        "controller": {"name": "x"},
        "activities": [],
        "security_measures": ["<b>not bold</b>", ropa.SECURITY_MEASURES[1]],
    }
    for lang in ropa.LANGUAGES:
        html = ropa.render_html(record, lang)
        assert "<b>not bold</b>" not in html and "&lt;b&gt;not bold&lt;/b&gt;" in html
        assert "customer&#39;s wrapped" in html if lang == "en" else "Crypto-Shredding" in html
