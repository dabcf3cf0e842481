"""The record of processing activities (GDPR Art. 30(1)), generated from the policy files.

One entry per purpose: its legal basis, the categories of data and of data subjects, the
recipients (with third-country transfers marked), the retention, and the security measures of
the vault (Art. 32) that apply to every purpose alike. JSON for tools, HTML for people.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from vault.policy import LegalBasis, Policy
from vault.policy.facts import effective_retention, recipients_public

FORMAT = "consent-vault/records-of-processing/v1"

DATA_SUBJECTS = {
    "de": "Kundinnen und Kunden (Webshop, App, Filialen, Kundenservice)",
    "en": "Customers (web shop, app, stores, call centre)",
}

LEGAL_BASIS_ARTICLE = {
    LegalBasis.CONSENT: "GDPR Art. 6(1)(a)",
    LegalBasis.CONTRACT: "GDPR Art. 6(1)(b)",
    LegalBasis.LEGAL_OBLIGATION: "GDPR Art. 6(1)(c)",
    LegalBasis.LEGITIMATE_INTEREST: "GDPR Art. 6(1)(f)",
}

# Art. 30(1)(g): a general description of the technical and organisational measures.
SECURITY_MEASURES = [
    "Every attribute value is encrypted at rest with AES-256-GCM under a data key of its own "
    "customer; data keys are wrapped under versioned key-encryption keys (rotation online).",
    "Erasure destroys the customer's wrapped data key (crypto-shredding) and deletes values and "
    "index rows; SQLite overwrites freed pages (secure_delete).",
    "Lookups by e-mail, phone or external id use keyed HMAC-SHA256 blind indexes, never "
    "plaintext or unkeyed hashes.",
    "Apps authenticate with OAuth2 client credentials (Argon2id secrets, short-lived signed "
    "tokens); scopes and registered purposes limit what each app may do and read.",
    "Every release is decided per purpose against the legal basis (consent, objection, "
    "restriction) at read time and only the purpose's attributes, reduced where the policy says "
    "so, are released (data minimisation).",
    "Every release, denial, consent change, data-subject request and admin action is written "
    "to an append-only, hash-chained audit log sealed by Ed25519-signed checkpoints.",
    "The consent ledger is append-only in the database (triggers) and each statement carries a "
    "signed receipt.",
    "Values past their retention are deleted by the retention job (vault retention run).",
]

_TEMPLATES = Path(__file__).parent / "templates"


def build(policy: Policy) -> dict[str, Any]:
    retention = effective_retention(policy)
    recipients = {r["id"]: r for r in recipients_public(policy)}
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
                    "GDPR Art. 9(2)(a) and 6(1)(a)"
                    if p.explicit_consent
                    else LEGAL_BASIS_ARTICLE[p.legal_basis]
                ),
                "direct_marketing": p.direct_marketing,
                "data_subjects": DATA_SUBJECTS,
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


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(record: dict[str, Any], lang: str = "en") -> str:
    return _env().get_template("records_of_processing.html").render(r=record, lang=lang)
