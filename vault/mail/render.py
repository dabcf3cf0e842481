"""Mail templates: Jinja2 with the texts in gettext catalogues, a text and an HTML part each.

``templates/<name>.txt`` extends ``base.txt`` and has the blocks ``subject`` and ``body``;
``templates/<name>.html`` extends ``base.html`` (autoescaped). Every sentence is a
``{% trans %}`` block with an English msgid; the German (and English) texts are in
``locale/<lang>/LC_MESSAGES/messages.po`` (``tests/mail/test_catalogues.py`` keeps them complete
and in step with the templates). Undefined context variables are errors, so a mail that cannot be
rendered fails the transaction that enqueues it instead of going out half empty.

What the templates never carry: advertising, remote images, tracking pixels or redirecting
links. A mail from the vault is about the customer's data and consents, nothing else.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from vault.l10n import catalogue

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
LOCALE_DIR = HERE / "locale"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class UnknownTemplate(ValueError):
    """No such mail template (a programming error, never a customer's)."""


@dataclass(frozen=True, repr=False)
class Rendered:
    subject: str
    text: str
    html: str

    def __repr__(self) -> str:
        return "Rendered(***)"


@cache
def _environment(html: bool, lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=html, default_for_string=html),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_translations(catalogue(LOCALE_DIR, lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def language_of(language: str | None) -> str:
    """The template language for a customer's language (German when we have none for it)."""
    lang = (language or "").split("-")[0].lower()
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def templates() -> list[str]:
    """The names of the mail templates there are (each with a text and an HTML part)."""
    names = {p.stem for p in TEMPLATE_DIR.glob("*.txt")} - {"base"}
    return sorted(names)


def _files(template: str) -> tuple[str, ...]:
    return ("base.txt", "base.html", f"{template}.txt", f"{template}.html")


@cache
def template_version(template: str, language: str) -> str:
    """The first 16 hex digits of the SHA-256 over what ``template`` renders from in
    ``language``: its text and HTML parts, the two bases, and each of their msgids with its
    translation in that language. It changes with every change of wording in the templates or
    in the catalogue entries they use (not with other entries), so a receipt names the text that
    went out."""
    lang = language_of(language)
    env = _environment(False, lang)
    gettext = catalogue(LOCALE_DIR, lang).gettext
    digest = hashlib.sha256()
    msgids: set[str] = set()
    for name in _files(template):
        source = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
        msgids.update(m for _, _, m in env.extract_translations(source) if isinstance(m, str))
    for msgid in sorted(msgids):
        digest.update(msgid.encode() + b"\0" + gettext(msgid).encode() + b"\0")
    return digest.hexdigest()[:16]


def render(template: str, language: str, context: dict[str, Any]) -> Rendered:
    """Subject, text and HTML of ``template`` in ``language`` (see :func:`language_of`)."""
    if not _NAME.match(template) or template not in templates():
        raise UnknownTemplate(f"no mail template {template!r}")
    lang = language_of(language)
    values = {**context, "lang": lang}
    text_tpl = _environment(False, lang).get_template(f"{template}.txt")
    ctx = text_tpl.new_context(values)
    subject = " ".join("".join(text_tpl.blocks["subject"](ctx)).split())
    text = text_tpl.render(values).strip() + "\n"
    html = _environment(True, lang).get_template(f"{template}.html").render(values)
    return Rendered(subject=subject, text=text, html=html)
