"""The gettext catalogues are complete and in step with the templates and the code."""

from __future__ import annotations

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from vault.selfservice import i18n

JINJA = {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}


def _source_ids() -> set[str]:
    found = extract_from_dir(
        str(i18n.HERE),
        method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.html": JINJA},
        keywords={**DEFAULT_KEYWORDS, "N_": None},
    )
    return {message for _file, _line, message, _comments, _ctx in found}


def _catalog(lang: str):
    with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def test_catalogues_match_the_sources_and_german_is_complete():
    ids = _source_ids()
    assert len(ids) > 80
    for lang in i18n.LANGUAGES:
        catalog = _catalog(lang)
        assert {m.id for m in catalog if m.id} == ids, lang
        assert not [m.id for m in catalog if m.id and m.fuzzy]
        problems = [(m.id, errors) for m, errors in catalog.check()]
        assert problems == [], problems
    missing = [m.id for m in _catalog("de") if m.id and not m.string]
    assert missing == []


def test_translations_render_both_languages():
    de = i18n.translations("de")
    en = i18n.translations("en")
    assert de.gettext("My consents") == "Meine Einwilligungen"
    assert en.gettext("My consents") == "My consents"
    assert "Einschalten: Newsletter" in de.gettext("Switch on: %(title)s") % {"title": "Newsletter"}


def test_accept_language_negotiation():
    assert i18n.negotiate(None, None, None) == "de"
    assert i18n.negotiate(None, None, "en-US,en;q=0.9") == "en"
    assert i18n.negotiate(None, None, "fr-FR,en;q=0.5,de;q=0.8") == "de"
    assert i18n.negotiate(None, None, "fr, *;q=0.1") == "de"
    assert i18n.negotiate(None, None, "en;q=0, de;q=0.1") == "de"
    assert i18n.negotiate(None, "en", "de") == "en"
    assert i18n.negotiate("de", "en", "en") == "de"
    assert i18n.negotiate("xx", "yy", "en") == "en"
    assert i18n.negotiate(None, None, "garbage;;q=x,,") == "de"
