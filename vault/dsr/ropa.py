"""The record of processing activities (GDPR Art. 30(1)), generated from the policy files.

One entry per purpose: its legal basis, the categories of data and of data subjects, the
recipients (with third-country transfers marked), the retention, and the security measures of
the vault (Art. 32) that apply to every purpose alike. JSON for tools, HTML for people.

The JSON keeps codes and English texts. The page (``templates/records_of_processing.html``) is in
German or English: its texts are gettext messages with English msgids in
``locale/<lang>/LC_MESSAGES/messages.po``, compiled in memory (:func:`vault.l10n.catalogue`);
``tests/dsr/test_ropa_catalogues.py`` keeps the catalogues in step with the template and the
``N_()`` texts here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vault.l10n import catalogue
from vault.policy import LegalBasis, Policy
from vault.policy.facts import effective_retention, recipients_public

FORMAT = "consent-vault/records-of-processing/v1"

LANGUAGES = ("de", "en")
HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"


def N_(message: str) -> str:
    """Marks an English text for the catalogues; the page translates it where it shows it."""
    return message


# Texts the record carries in English (the JSON keeps them so; the page shows them in its
# language). Every text of the page is in locale/<lang>/LC_MESSAGES/messages.po (English msgids):
# these here and the template's {% trans %} blocks and _() calls.
DATA_SUBJECTS = N_("Customers (web shop, app, stores, call centre)")

LEGAL_BASIS_ARTICLE = {
    LegalBasis.CONSENT: N_("GDPR Art. 6(1)(a)"),
    LegalBasis.CONTRACT: N_("GDPR Art. 6(1)(b)"),
    LegalBasis.LEGAL_OBLIGATION: N_("GDPR Art. 6(1)(c)"),
    LegalBasis.LEGITIMATE_INTEREST: N_("GDPR Art. 6(1)(f)"),
}
EXPLICIT_CONSENT_ARTICLE = N_("GDPR Art. 9(2)(a) and 6(1)(a)")

# Art. 30(1)(g): a general description of the technical and organisational measures.
SECURITY_MEASURES = [
    N_(
        "Every attribute value is encrypted at rest with AES-256-GCM under a data key of its own "
        "customer; data keys are wrapped under versioned key-encryption keys (rotation online)."
    ),
    N_(
        "Erasure destroys the customer's wrapped data key (crypto-shredding) and deletes values "
        "and index rows; SQLite overwrites freed pages (secure_delete)."
    ),
    N_(
        "Lookups by e-mail, phone or external id use keyed HMAC-SHA256 blind indexes, never "
        "plaintext or unkeyed hashes."
    ),
    N_(
        "Apps authenticate with OAuth2 client credentials (Argon2id secrets, short-lived signed "
        "tokens); scopes and registered purposes limit what each app may do and read."
    ),
    N_(
        "Every release is decided per purpose against the legal basis (consent, objection, "
        "restriction) at read time and only the purpose's attributes, reduced where the policy "
        "says so, are released (data minimisation)."
    ),
    N_(
        "Every release, denial, consent change, data-subject request and admin action is written "
        "to an append-only, hash-chained audit log sealed by Ed25519-signed checkpoints."
    ),
    N_(
        "The consent ledger is append-only in the database (triggers) and each statement "
        "carries a signed receipt."
    ),
    N_("Values past their retention are deleted by the retention job (vault retention run)."),
]


def build(policy: Policy) -> dict[str, Any]:
    retention = effective_retention(policy)
    recipients = {r["id"]: r for r in recipients_public(policy)}
    data_subjects = {lang: _translations(lang).gettext(DATA_SUBJECTS) for lang in LANGUAGES}
    activities = []
    for p in policy.purposes.values():
        categories = sorted({policy.attributes[a].category.value for a in p.attributes})
        activities.append(
            {
                "purpose": p.id,
                "version": p.version,
                "title": p.title.model_dump(),
                "description": p.description.model_dump(),
                "legal_basis": p.legal_basis.value,
                "legal_basis_article": (
                    EXPLICIT_CONSENT_ARTICLE
                    if p.explicit_consent
                    else LEGAL_BASIS_ARTICLE[p.legal_basis]
                ),
                "direct_marketing": p.direct_marketing,
                "data_subjects": data_subjects,
                "data_categories": categories,
                "special_categories": [
                    a for a in p.attributes if policy.attributes[a].special_category
                ],
                "attributes": [
                    {
                        "name": a,
                        "label": policy.attributes[a].label.model_dump(),
                        "category": policy.attributes[a].category.value,
                        "reduced_to": p.reduce[a].value if a in p.reduce else None,
                        "retention_days": retention[a][0],
                    }
                    for a in p.attributes
                ],
                "recipients": [recipients[r] for r in p.recipients if r in recipients],
                "third_country_transfers": [
                    {"recipient": r, "country": recipients[r]["country"]}
                    for r in p.recipients
                    if r in recipients and recipients[r]["third_country"]
                ],
                "retention_days": p.retention_days,
                "dpv": p.dpv,
            }
        )
    return {
        "format": FORMAT,
        "controller": dict(policy.controller),
        "activities": activities,
        "recipients": list(recipients.values()),
        "security_measures": SECURITY_MEASURES,
    }


def _translations(lang: str) -> Translations:
    return catalogue(LOCALE_DIR, lang)


@cache
def _env(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(_translations(lang), newstyle=True)  # type: ignore[attr-defined]
    # The record's English texts (articles, data subjects, measures) in the page's language, as
    # plain strings: autoescaped like any value of the record, not trusted like a template text.
    env.globals["text"] = _translations(lang).gettext
    env.globals["country"] = lambda code: _country(code, lang)
    env.globals["lang"] = lang
    return env


def _country(code: str, lang: str) -> str:
    return Locale.parse(lang).territories.get(code.upper(), code)


def render_html(record: dict[str, Any], lang: str = "en", *, base_url: str = "") -> str:
    """The record as a page in ``lang`` (de/en): labels instead of keys and codes, the
    self-service page's stylesheet (from ``base_url``, so a saved copy still finds it)."""
    lang = lang if lang in LANGUAGES else "en"
    return (
        _env(lang)
        .get_template("records_of_processing.html")
        .render(r=record, stylesheet=f"{base_url.rstrip('/')}/me/static/style.css")
    )
