"""The evidence PII net: what a consent statement's ``evidence`` may hold, and IP truncation.

Evidence is stored in the append-only ledger and signed into the receipt, so it must never hold
plaintext contact data: it is flat, short, and IP addresses are cut to their network.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

from vault.consent.errors import EvidenceContainsContactData, InvalidEvidence

_IP_KEYS = frozenset({"ip", "ip_address", "client_ip", "remote_addr", "remote_ip"})
_CONTACT_KEY = re.compile(
    r"e_?mail|mail|phone|mobile|fax|street|address|postal|zip|birth|surname|(^|_)name($|_)",
    re.IGNORECASE,
)
_EMAIL_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_VALUE = re.compile(r"^\s*(\+|00|0)[\d\s()/.-]{6,}$")
_EVIDENCE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_EVIDENCE_KEYS = 20
MAX_EVIDENCE_VALUE = 512


def truncate_ip(value: str) -> str:
    """IPv4 to its /24, IPv6 to its /48: enough to see a network, not a household."""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidEvidence("evidence: the IP address is not valid.") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return f"{ipaddress.IPv4Address(int(ip) & ~0xFF)}/24"
    return f"{ipaddress.IPv6Address(int(ip) & ~((1 << 80) - 1))}/48"


_INT64 = 2**63


def clean_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flat, short, and free of plaintext contact data; IP addresses truncated."""
    if not evidence:
        return {}
    if not isinstance(evidence, Mapping) or len(evidence) > MAX_EVIDENCE_KEYS:
        raise InvalidEvidence(f"evidence may have at most {MAX_EVIDENCE_KEYS} keys.")
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        if not isinstance(key, str) or not _EVIDENCE_KEY.match(key):
            raise InvalidEvidence("evidence keys are short identifiers ([A-Za-z0-9_.-]).")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidEvidence(f"evidence '{key}': only strings, numbers and booleans.")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvidence(f"evidence '{key}': numbers must be finite.")
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            # beyond what orjson (receipts, request hashes) and the JSON columns carry
            raise InvalidEvidence(f"evidence '{key}': integers must fit in 64 bits.")
        if key.lower() in _IP_KEYS:
            if not isinstance(value, str):
                raise InvalidEvidence(f"evidence '{key}': an IP address is a string.")
            out[key] = truncate_ip(value)
            continue
        if _CONTACT_KEY.search(key):
            raise EvidenceContainsContactData(f"evidence '{key}' looks like contact data.")
        if isinstance(value, str):
            if len(value) > MAX_EVIDENCE_VALUE:
                raise InvalidEvidence(f"evidence '{key}' is longer than {MAX_EVIDENCE_VALUE}.")
            if _EMAIL_VALUE.search(value) or _PHONE_VALUE.match(value):
                raise EvidenceContainsContactData(f"evidence '{key}' looks like contact data.")
        out[key] = value
    return out
