"""The consent dossier as a printable page (de/en): ``GET /v1/customers/{id}/consents/dossier``
with ``Accept: text/html``.

The dossier itself is built by :mod:`vault.consent.dossier`; this module only shows it, with the
self-service page's gettext catalogues and stylesheet plus ``dossier.css`` (its print rules). No
script, no asset from elsewhere. Codes (statuses, channels) get labels; ids, hashes, evidence
and receipts are shown as stored, so the printout says exactly what the signed JSON says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vault.selfservice import i18n


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated when shown."""
    return message


STATUS = {
    "granted": N_("granted"),
    "withdrawn": N_("withdrawn"),
    "refused": N_("refused"),
    "pending_confirmation": N_("waiting for confirmation"),
    "confirmed": N_("confirmed (double opt-in)"),
    "expired": N_("expired"),
    "reconsent_required": N_("consent needs renewing"),
    "none": N_("never decided"),
}
CHANNEL = {
    "web": N_("web shop"),
    "app": N_("app"),
    "store": N_("store"),
    "call_center": N_("call centre"),
    "email": N_("e-mail"),
    "api": N_("API"),
    "selfservice": N_("self-service page"),
}
CUSTOMER_STATUS = {
    "active": N_("active"),
    "restricted": N_("processing restricted (GDPR Art. 18)"),
}
LEGAL_BASIS = {
    "consent": N_("consent (GDPR Art. 6(1)(a))"),
    "contract": N_("contract (GDPR Art. 6(1)(b))"),
    "legal_obligation": N_("legal obligation (GDPR Art. 6(1)(c))"),
    "legitimate_interest": N_("legitimate interest (GDPR Art. 6(1)(f))"),
}


def language(query: str | None, accept_language: str | None) -> str:
    """``?lang=``, else ``Accept-Language``, else German."""
    return i18n.negotiate(query, None, accept_language)


def render(dossier: dict[str, Any], lang: str, *, base_url: str = "") -> str:
    """The page in ``lang``; stylesheets from ``base_url`` so a saved copy still finds them."""
    gettext = i18n.translations(lang).gettext
    when = i18n.environment(lang).filters["datetime"]

    def label(table: dict[str, str], code: str | None) -> str:
        if code is None:
            return ""
        return gettext(table[code]) if code in table else code

    base = base_url.rstrip("/")
    return i18n.render(
        "dossier.html",
        lang,
        d=dossier,
        when=lambda value: when(datetime.fromisoformat(value)) if value else "",
        status=lambda code: label(STATUS, code),
        channel=lambda code: label(CHANNEL, code),
        legal_basis=lambda code: label(LEGAL_BASIS, code),
        customer_status=lambda code: label(CUSTOMER_STATUS, code),
        stylesheets=(f"{base}/me/static/style.css", f"{base}/me/static/dossier.css"),
    )
