"""Mail templates: Jinja2, one text and one HTML part per template and language.

``templates/<name>.<lang>.txt`` extends ``base.txt`` and has the blocks ``subject`` and
``body``; ``templates/<name>.<lang>.html`` extends ``base.html`` (autoescaped). Every template
exists in every language of :data:`LANGUAGES` (``tests/mail/test_render.py``). Undefined
context variables are errors, so a mail that cannot be rendered fails the transaction that
enqueues it instead of going out half empty.

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

TEMPLATE_DIR = Path(__file__).parent / "templates"
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
def _environment(html: bool) -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=html, default_for_string=html),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def language_of(language: str | None) -> str:
    """The template language for a customer's language (German when we have none for it)."""
    lang = (language or "").split("-")[0].lower()
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def templates() -> list[str]:
    """The names of the mail templates there are (each in every language)."""
    names = {p.name.split(".")[0] for p in TEMPLATE_DIR.glob("*.*.txt")}
    return sorted(names)


@cache
def template_version(template: str, language: str) -> str:
    """The first 16 hex digits of the SHA-256 over the files ``template`` renders from in
    ``language`` (its text and HTML parts and the two bases): it changes with every change of
    wording, so a receipt names the text that went out."""
    lang = language_of(language)
    digest = hashlib.sha256()
    for name in ("base.txt", "base.html", f"{template}.{lang}.txt", f"{template}.{lang}.html"):
        digest.update(name.encode() + b"\0" + (TEMPLATE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def render(template: str, language: str, context: dict[str, Any]) -> Rendered:
    """Subject, text and HTML of ``template`` in ``language`` (see :func:`language_of`)."""
    if not _NAME.match(template) or template not in templates():
        raise UnknownTemplate(f"no mail template {template!r}")
    lang = language_of(language)
    values = {**context, "lang": lang}
    text_tpl = _environment(False).get_template(f"{template}.{lang}.txt")
    ctx = text_tpl.new_context(values)
    subject = " ".join("".join(text_tpl.blocks["subject"](ctx)).split())
    text = text_tpl.render(values).strip() + "\n"
    html = _environment(True).get_template(f"{template}.{lang}.html").render(values)
    return Rendered(subject=subject, text=text, html=html)
