"""Consent receipts: a JWS per ledger event, payload in Kantara Consent Receipt v1.1 terms.

The receipt is signed by the vault's ES256 key (``runtime.signer``; all JOSE code stays in
:mod:`vault.crypto.signing`), ``typ`` ``consent-receipt+jwt``, ``kid`` as published at
``/.well-known/jwks.json``. It names the customer only by the opaque ``piiPrincipalId``; the
controller's contact data come from the policy. Fields outside the Kantara schema carry the
ledger facts a verifier needs (``consentStatus``, ``purposeId``, ``purposeVersion``,
``noticeHash``, ``actor``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from vault.crypto.signing import Signer
from vault.policy import Policy, Purpose

RECEIPT_TYP = "consent-receipt+jwt"
KANTARA_VERSION = "KI-CR-v1.1.0"

# The parts of a receipt that depend only on (policy, purpose, language), computed once.
# Keyed by object identity; the objects are kept in the value so an id is never reused.
_static: dict[tuple[int, int, str], tuple[Policy, Purpose, dict[str, Any]]] = {}


_notice: dict[tuple[int, str], tuple[Purpose, str]] = {}


def notice_hash(purpose: Purpose, language: str) -> str:
    """SHA-256 of the notice text the customer was shown: proves which wording they agreed to."""
    hit = _notice.get((id(purpose), language))
    if hit is not None and hit[0] is purpose:
        return hit[1]
    if len(_notice) > 1024:
        _notice.clear()
    digest = _notice_digest(purpose, language)
    _notice[(id(purpose), language)] = (purpose, digest)
    return digest


def _notice_digest(purpose: Purpose, language: str) -> str:
    doc = {
        "purpose": purpose.id,
        "version": purpose.version,
        "language": language,
        "title": purpose.title.get(language),
        "description": purpose.description.get(language),
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _service(policy: Policy, purpose: Purpose, language: str) -> dict[str, Any]:
    categories = sorted(
        {str(policy.attributes[a].category) for a in purpose.attributes if a in policy.attributes}
    )
    third = [
        policy.recipients[r].name.get(language)
        for r in purpose.recipients
        if r in policy.recipients and policy.recipients[r].kind == "third_party"
    ]
    entry: dict[str, Any] = {
        "purpose": purpose.description.get(language),
        "purposeCategory": [purpose.dpv] if purpose.dpv else [purpose.id],
        "consentType": "EXPLICIT" if purpose.explicit_consent else "EXPRESSED",
        "piiCategory": categories,
        "primaryPurpose": True,
        "termination": (
            f"until withdrawn, at most {purpose.consent_ttl_days} days"
            if purpose.consent_ttl_days
            else "until withdrawn"
        ),
        "thirdPartyDisclosure": bool(third),
    }
    if third:
        entry["thirdPartyName"] = ", ".join(third)
    return {"service": purpose.title.get(language), "purposes": [entry]}


def _static_part(policy: Policy, purpose: Purpose, language: str) -> dict[str, Any]:
    key = (id(policy), id(purpose), language)
    hit = _static.get(key)
    if hit is not None and hit[0] is policy and hit[1] is purpose:
        return hit[2]
    controller = policy.controller
    special = sorted(
        {
            str(policy.attributes[a].category)
            for a in purpose.attributes
            if a in policy.attributes and policy.attributes[a].special_category
        }
    )
    part = {
        "version": KANTARA_VERSION,
        "jurisdiction": controller.get("jurisdiction", "DE"),
        "piiControllers": [
            {
                "piiController": controller.get("name", ""),
                "onBehalf": False,
                "contact": controller.get("contact", ""),
                "address": controller.get("address", ""),
                "email": controller.get("contact", ""),
                "piiControllerUrl": controller.get("policy_url", ""),
            }
        ],
        "policyUrl": controller.get("policy_url", ""),
        "services": [_service(policy, purpose, language)],
        "sensitive": bool(special),
        "spiCat": special,
    }
    if len(_static) > 1024:
        _static.clear()
    _static[key] = (policy, purpose, part)
    return part


def build_payload(
    *, event: Mapping[str, Any], policy: Policy, purpose: Purpose, issuer: str
) -> dict[str, Any]:
    """The receipt payload for one ledger event (given as its column values)."""
    return {
        **_static_part(policy, purpose, event["language"]),
        "consentTimestamp": int(event["occurred_at"].timestamp()),
        "collectionMethod": f"{event['channel']}: {event['method']}",
        "consentReceiptID": str(event["id"]),
        "language": event["language"],
        "piiPrincipalId": str(event["customer_id"]),
        # ledger facts beyond the Kantara schema
        "iss": issuer,
        "iat": int(event["recorded_at"].timestamp()),
        "consentStatus": event["status"],
        "purposeId": event["purpose"],
        "purposeVersion": event["purpose_version"],
        "noticeHash": event["notice_hash"],
        "actor": event["actor"],
    }


def sign_receipt(
    *, signer: Signer, event: Mapping[str, Any], policy: Policy, purpose: Purpose, issuer: str
) -> str:
    payload = build_payload(event=event, policy=policy, purpose=purpose, issuer=issuer)
    return signer.sign_payload(payload, typ=RECEIPT_TYP)
