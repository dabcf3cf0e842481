"""German and English for the self-service page.

Page texts live in gettext catalogues (``locale/<lang>/LC_MESSAGES/messages.po``, English
msgids), compiled in memory at first use (:func:`vault.l10n.catalogue`).
Purpose and attribute texts come from the policy files. One Jinja2 environment per language with
the catalogue installed once: rendering never swaps translations between threads.

The language of a request: ``?lang=`` (then kept in a cookie), else the cookie, else the best
match of ``Accept-Language``, else German.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vault.l10n import catalogue
from vault.policy import Attribute, AttributeType

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
TIMEZONE = "Europe/Berlin"


def translations(lang: str) -> Translations:
    return catalogue(LOCALE_DIR, lang)


def _datetime(value: datetime | None, lang: str) -> str:
    if value is None:
        return ""
    return format_datetime(value, format="medium", tzinfo=_tz(), locale=lang)


def format_day(value: datetime, lang: str) -> str:
    """The calendar day of ``value`` in Europe/Berlin, e.g. "3. Dezember 2026"."""
    return format_date(value.astimezone(_tz()).date(), format="long", locale=lang)


@cache
def _tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(TIMEZONE)


def _value(value: Any, lang: str) -> str:
    if isinstance(value, bool):
        _ = translations(lang).gettext
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return format_decimal(value, locale=lang)
    return str(value)


def attribute_value(attribute: Attribute | None, value: Any, lang: str) -> str:
    """A stored value as a person reads it in ``lang``: an enum's label from the policy
    (``not_stated`` -> "keine Angabe"), a country's name (``DE`` -> "Deutschland"), a date in
    the language's form ("17.05.1984", "May 17, 1984"), numbers and yes/no as :func:`_value`.
    Anything unexpected is shown as stored, never dropped."""
    if attribute is not None and isinstance(value, str):
        if attribute.type is AttributeType.ENUM and value in attribute.value_labels:
            return attribute.value_labels[value].get(lang)
        if attribute.type is AttributeType.COUNTRY:
            return _locale(lang).territories.get(value.upper(), value)
        if attribute.type is AttributeType.DATE:
            try:
                return format_date(date.fromisoformat(value), format="medium", locale=lang)
            except ValueError:
                return value
    return _value(value, lang)


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


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
    env.filters["datetime"] = lambda v: _datetime(v, lang)
    env.filters["value"] = lambda v: _value(v, lang)
    env.globals["lang"] = lang
    return env


def render(template: str, lang: str, **context: Any) -> str:
    return environment(lang).get_template(template).render(**context)


def from_accept_language(header: str | None) -> str | None:
    """The first supported language of an ``Accept-Language`` header, by quality."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        try:
            language = Locale.parse(tag.strip().replace("-", "_")).language
        except (ValueError, UnknownLocaleError):
            continue
        if language in LANGUAGES and q > 0:
            weighted.append((-q, i, language))
    return min(weighted)[2] if weighted else None


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    return from_accept_language(accept_language) or DEFAULT_LANGUAGE
