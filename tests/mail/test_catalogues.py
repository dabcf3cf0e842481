"""The mail catalogues are complete and in step with the mail templates."""

from __future__ import annotations

import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from vault.mail import render

JINJA = {"extensions": "jinja2.ext.i18n", "trim_blocks": "True", "lstrip_blocks": "True"}


def _template_ids() -> set[str]:
    found = extract_from_dir(
        str(render.HERE),
        method_map=[("templates/**.txt", "jinja2"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.txt": JINJA, "templates/**.html": JINJA},
    )
    return {message for _file, _line, message, _comments, _ctx in found}


def _catalog(lang: str):
    with (render.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", render.LANGUAGES)
def test_each_catalogue_holds_exactly_the_templates_texts(lang):
    ids = _template_ids()
    assert len(ids) >= 10
    catalog = _catalog(lang)
    assert {m.id for m in catalog if m.id} == ids
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    assert [(m.id, errors) for m, errors in catalog.check()] == []


def test_german_is_complete_and_no_word_stands_outside_the_catalogue():
    catalog = _catalog("de")
    assert [m.id for m in catalog if m.id and not m.string] == []
    for path in sorted(render.TEMPLATE_DIR.iterdir()):
        source = path.read_text(encoding="utf-8")
        bare = re.sub(r"{% trans\b.*?%}.*?{% endtrans %}", "", source, flags=re.S)
        bare = re.sub(r"{%.*?%}|{{.*?}}", "", bare, flags=re.S)
        bare = re.sub(r"<[^>]*>", "", bare, flags=re.S)
        assert not re.search(r"[^\W\d_]{2,}", bare), (path.name, bare.strip())
