"""Gettext catalogues, compiled in memory.

Every domain that speaks to people (the self-service pages, the mails, the records-of-processing
page) keeps its texts in its own ``locale/<lang>/LC_MESSAGES/messages.po`` with English msgids.
:func:`catalogue` compiles one with Babel at first use, so no binary ``.mo`` files are committed
and a wheel ships only the ``.po`` files.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations


@cache
def catalogue(locale_dir: Path, lang: str) -> Translations:
    """The compiled ``messages`` catalogue of ``lang`` under ``locale_dir``."""
    with (locale_dir / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf, domain="messages")
