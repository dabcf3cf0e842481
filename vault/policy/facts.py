"""Facts about the policy that several readers need: each attribute's effective retention and the
recipients with their third-country marking (the export, the Art. 30 record, the retention job).
Imports nothing but :mod:`vault.policy`."""

from __future__ import annotations

from typing import Any

from vault.policy.models import Policy

# Countries of the EU and the EEA: a recipient elsewhere is a transfer to a third country
# (GDPR Chapter V) and is marked so in the export and the Art. 30 record.
_EEA_CODES = (
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK IS LI NO"
)
EEA = frozenset(_EEA_CODES.split())


def effective_retention(policy: Policy) -> dict[str, tuple[int | None, str]]:
    """Per attribute: (days, rule). The attribute's own ``retention_days`` wins; otherwise, if
    every purpose that uses the attribute sets ``retention_days``, the longest of them (the
    value is needed as long as the longest-keeping purpose needs it); otherwise unbounded
    (kept until rectified away or erased)."""
    out: dict[str, tuple[int | None, str]] = {}
    for name, attr in policy.attributes.items():
        if attr.retention_days:
            out[name] = (attr.retention_days, "attribute")
            continue
        users = [p.retention_days for p in policy.purposes.values() if name in p.attributes]
        if users and all(d is not None for d in users):
            out[name] = (max(d for d in users if d is not None), "purposes")
        else:
            out[name] = (None, "none")
    return out


def recipients_public(policy: Policy) -> list[dict[str, Any]]:
    out = []
    for rid, r in policy.recipients.items():
        out.append(
            {
                "id": rid,
                "name": r.name.model_dump(),
                "kind": r.kind,
                "country": r.country,
                "third_country": r.country.upper() not in EEA,
                "purposes": [p.id for p in policy.purposes.values() if rid in p.recipients],
            }
        )
    return out
