"""The staff catalogues (one .po per area, merged) are complete and in step with the sources."""

from __future__ import annotations

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from vault.staff import i18n

JINJA = {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}


def _source_ids() -> set[str]:
    found = extract_from_dir(
        str(i18n.HERE),
        method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.html": JINJA},
        keywords={**DEFAULT_KEYWORDS, "N_": None},
    )
    return {message for _file, _line, message, _comments, _ctx in found}


def test_catalogues_match_the_sources_and_german_is_complete():
    ids = _source_ids()
    assert len(ids) > 60
    for lang in i18n.LANGUAGES:
        files = i18n.catalogue_files(lang)
        assert files, lang
        seen: dict[str, tuple[str, str]] = {}
        for path in files:
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang)
            for m in catalog:
                if not m.id:
                    continue
                # a text two areas both use must read the same in both catalogues
                if m.id in seen:
                    assert seen[m.id][1] == m.string, f"{m.id!r}: {seen[m.id][0]}, {path.name}"
                seen[m.id] = (path.name, m.string)
                assert not m.fuzzy, m.id
            problems = [(m.id, errors) for m, errors in catalog.check()]
            assert problems == [], problems
            if lang == "de":
                assert [m.id for m in catalog if m.id and not m.string] == [], path.name
        assert set(seen) == ids, (lang, sorted(set(seen) ^ ids))


def test_translations_render_both_languages():
    assert i18n.gettext("de")("Sign in") == "Anmelden"
    assert i18n.gettext("en")("Sign in") == "Sign in"
    html = i18n.render("staff_message.html", "de", title="T", text="x", member=None, areas=[])
    assert "Zur Startseite" in html and 'lang="de"' in html
