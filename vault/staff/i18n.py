"""German and English for the staff console.

The texts live in gettext catalogues next to this module, ``locale/<lang>/LC_MESSAGES/*.po``
(English msgids): one catalogue per area of the console (``staff.po`` for sign-in, start page
and auditors; the store/call-centre and privacy-office pages bring their own), merged in memory
with Babel at first use, so areas never edit each other's catalogue and no ``.mo`` files are
committed. ``tests/staff/test_i18n.py`` keeps the catalogues equal to the texts the templates
and the code use. Language negotiation and the formatting filters are the self-service page's
(:mod:`vault.selfservice.i18n`): ``?lang=``, then the cookie, then ``Accept-Language``.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vault.selfservice import i18n as selfservice_i18n

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
LANGUAGES = selfservice_i18n.LANGUAGES
negotiate = selfservice_i18n.negotiate


def catalogue_files(lang: str) -> list[Path]:
    return sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po"))


def catalog(lang: str) -> Catalog:
    """Every staff catalogue of ``lang`` as one."""
    merged = Catalog(locale=lang)
    for path in catalogue_files(lang):
        with path.open("rb") as f:
            for message in read_po(f, locale=lang):
                if message.id:
                    merged[message.id] = message
    return merged


@cache
def translations(lang: str) -> Translations:
    buf = BytesIO()
    write_mo(buf, catalog(lang))
    buf.seek(0)
    return Translations(fp=buf, domain="messages")


def gettext(lang: str):
    return translations(lang).gettext


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    base = selfservice_i18n.environment(lang)
    for name in ("datetime", "value"):
        env.filters[name] = base.filters[name]
    env.globals["lang"] = lang
    return env


def render(template: str, lang: str, **context: Any) -> str:
    return environment(lang).get_template(template).render(**context)
