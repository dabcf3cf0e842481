"""The record of processing activities (GDPR Art. 30(1)), generated from the policy files.

One entry per purpose: its legal basis, the categories of data and of data subjects, the
recipients (with third-country transfers marked), the retention, and the security measures of
the vault (Art. 32) that apply to every purpose alike. JSON for tools, HTML for people.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
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

SECURITY_MEASURES_DE = [
    "Jeder Attributwert ist im Ruhezustand mit AES-256-GCM unter einem eigenen Datenschlüssel "
    "seines Kunden verschlüsselt; die Datenschlüssel sind mit versionierten Schlüssel-"
    "verschlüsselungsschlüsseln umschlossen (Rotation im laufenden Betrieb).",
    "Die Löschung vernichtet den umschlossenen Datenschlüssel des Kunden (Crypto-Shredding) und "
    "löscht Werte und Indexzeilen; SQLite überschreibt freigegebene Seiten (secure_delete).",
    "Suchen nach E-Mail-Adresse, Telefonnummer oder externer Kennung nutzen verschlüsselte "
    "HMAC-SHA256-Blindindizes, nie Klartext oder ungeschlüsselte Hashes.",
    "Anwendungen melden sich mit OAuth2 Client Credentials an (Argon2id-Geheimnisse, kurzlebige "
    "signierte Tokens); Berechtigungen und registrierte Zwecke begrenzen, was jede Anwendung tun "
    "und lesen darf.",
    "Jede Herausgabe wird je Zweck zum Zeitpunkt des Lesens gegen die Rechtsgrundlage geprüft "
    "(Einwilligung, Widerspruch, Einschränkung), und nur die Attribute des Zwecks, reduziert wo "
    "die Richtlinie es vorsieht, werden herausgegeben (Datenminimierung).",
    "Jede Herausgabe, Ablehnung, Einwilligungsänderung, Betroffenenanfrage und Verwaltungsaktion "
    "wird in ein nur erweiterbares, hashverkettetes Audit-Protokoll geschrieben, das durch "
    "Ed25519-signierte Prüfpunkte versiegelt ist.",
    "Das Einwilligungsjournal ist in der Datenbank nur erweiterbar (Trigger), und jede Erklärung "
    "trägt eine signierte Quittung.",
    "Werte nach Ablauf ihrer Aufbewahrungsfrist löscht der Aufbewahrungsjob (vault retention run).",
]

# What the readable page shows instead of the record's keys and codes (the JSON keeps the codes).
LABELS: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Records of processing activities (GDPR Art. 30(1))",
        "controller": "Controller",
        "controller_keys": {
            "name": "Name",
            "address": "Address",
            "contact": "Data protection contact",
            "policy_url": "Privacy notice",
            "jurisdiction": "Jurisdiction",
        },
        "data_subjects": "Categories of data subjects",
        "purpose": "purpose",
        "version": "version",
        "legal_basis": "Legal basis",
        "legal_bases": {
            "consent": "Consent",
            "contract": "Performance of a contract",
            "legal_obligation": "Legal obligation",
            "legitimate_interest": "Legitimate interest",
        },
        "direct_marketing": "direct marketing (objection under Art. 21(2) always possible)",
        "data_categories": "Categories of data",
        "categories": {
            "contact": "contact data",
            "identity": "identity data",
            "demographic": "demographic data",
            "preference": "preferences",
            "loyalty": "loyalty programme data",
            "behavioural": "behavioural data",
            "health": "health data",
        },
        "special": "special categories (Art. 9)",
        "data": "Data",
        "reductions": {
            "year": "year only",
            "prefix2": "first two digits only",
            "domain": "domain only",
        },
        "reduced": "reduced to",
        "deleted_after": "deleted {days} days after its last change",
        "recipients": "Recipients",
        "kinds": {
            "internal": "internal",
            "processor": "processor (Art. 28)",
            "third_party": "third party",
        },
        "third_country": "third country",
        "transfers": "Transfers to third countries",
        "retention": "Retention",
        "days": "{days} days",
        "while_basis": "while the legal basis holds; until erasure",
        "none": "none",
        "measures": "Technical and organisational security measures (Art. 32)",
    },
    "de": {
        "title": "Verzeichnis von Verarbeitungstätigkeiten (Art. 30 Abs. 1 DSGVO)",
        "controller": "Verantwortlicher",
        "controller_keys": {
            "name": "Name",
            "address": "Anschrift",
            "contact": "Kontakt Datenschutz",
            "policy_url": "Datenschutzerklärung",
            "jurisdiction": "Rechtsordnung",
        },
        "data_subjects": "Kategorien betroffener Personen",
        "purpose": "Zweck",
        "version": "Version",
        "legal_basis": "Rechtsgrundlage",
        "legal_bases": {
            "consent": "Einwilligung",
            "contract": "Vertragserfüllung",
            "legal_obligation": "Rechtliche Verpflichtung",
            "legitimate_interest": "Berechtigtes Interesse",
        },
        "direct_marketing": "Direktwerbung (Widerspruch nach Art. 21 Abs. 2 jederzeit möglich)",
        "data_categories": "Kategorien personenbezogener Daten",
        "categories": {
            "contact": "Kontaktdaten",
            "identity": "Identitätsdaten",
            "demographic": "demografische Daten",
            "preference": "Präferenzen",
            "loyalty": "Daten des Treueprogramms",
            "behavioural": "Verhaltensdaten",
            "health": "Gesundheitsdaten",
        },
        "special": "besondere Kategorien (Art. 9)",
        "data": "Daten",
        "reductions": {
            "year": "nur das Jahr",
            "prefix2": "nur die ersten zwei Ziffern",
            "domain": "nur die Domain",
        },
        "reduced": "reduziert auf",
        "deleted_after": "gelöscht {days} Tage nach der letzten Änderung",
        "recipients": "Empfänger",
        "kinds": {
            "internal": "intern",
            "processor": "Auftragsverarbeiter (Art. 28)",
            "third_party": "Dritter",
        },
        "third_country": "Drittland",
        "transfers": "Übermittlungen in Drittländer",
        "retention": "Speicherdauer",
        "days": "{days} Tage",
        "while_basis": "solange die Rechtsgrundlage besteht; bis zur Löschung",
        "none": "keine",
        "measures": "Technische und organisatorische Maßnahmen (Art. 32)",
    },
}

LEGAL_BASIS_ARTICLE_DE = {
    LegalBasis.CONSENT.value: "Art. 6 Abs. 1 lit. a DSGVO",
    LegalBasis.CONTRACT.value: "Art. 6 Abs. 1 lit. b DSGVO",
    LegalBasis.LEGAL_OBLIGATION.value: "Art. 6 Abs. 1 lit. c DSGVO",
    LegalBasis.LEGITIMATE_INTEREST.value: "Art. 6 Abs. 1 lit. f DSGVO",
}
EXPLICIT_CONSENT_ARTICLE = {
    "en": "GDPR Art. 9(2)(a) and 6(1)(a)",
    "de": "Art. 9 Abs. 2 lit. a und Art. 6 Abs. 1 lit. a DSGVO",
}

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


def _article(activity: dict[str, Any], lang: str) -> str:
    if lang != "de":
        return activity.get("legal_basis_article", "")
    if activity.get("legal_basis_article", "").startswith("GDPR Art. 9"):
        return EXPLICIT_CONSENT_ARTICLE["de"]
    return LEGAL_BASIS_ARTICLE_DE.get(activity.get("legal_basis", ""), "")


def _country(code: str, lang: str) -> str:
    return Locale.parse(lang).territories.get(code.upper(), code)


def render_html(record: dict[str, Any], lang: str = "en", *, base_url: str = "") -> str:
    """The record as a page in ``lang`` (de/en): labels instead of keys and codes, the
    self-service page's stylesheet (from ``base_url``, so a saved copy still finds it)."""
    lang = lang if lang in LABELS else "en"
    return (
        _env()
        .get_template("records_of_processing.html")
        .render(
            r=record,
            lang=lang,
            t=LABELS[lang],
            article=lambda a: _article(a, lang),
            country=lambda c: _country(c, lang),
            measures=SECURITY_MEASURES_DE if lang == "de" else record["security_measures"],
            stylesheet=f"{base_url.rstrip('/')}/me/static/style.css",
        )
    )
