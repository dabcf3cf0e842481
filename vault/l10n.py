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

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations


def catalogue_files(locale_dir: Path, lang: str) -> list[Path]:
    """The ``.po`` files of ``lang``: ``messages.po``, or one per area (the staff console)."""
    return sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po"))


def merged(locale_dir: Path, lang: str) -> Catalog:
    """Every ``.po`` file of ``lang`` under ``locale_dir`` as one catalogue."""
    files = catalogue_files(locale_dir, lang)
    if len(files) == 1:
        with files[0].open("rb") as f:
            return read_po(f, locale=lang)
    union = Catalog(locale=lang)
    for path in files:
        with path.open("rb") as f:
            for message in read_po(f, locale=lang):
                if message.id:
                    union[message.id] = message
    return union


@cache
def catalogue(locale_dir: Path, lang: str) -> Translations:
    """The compiled catalogue of ``lang`` under ``locale_dir`` (see :func:`merged`)."""
    buf = BytesIO()
    write_mo(buf, merged(locale_dir, lang))
    buf.seek(0)
    return Translations(fp=buf, domain="messages")
