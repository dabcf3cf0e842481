"""The evidence allowlist: what a consent statement's ``evidence`` may hold, typed, and IP
truncation.

Evidence is stored in the append-only ledger (which outlives erasure) and signed into the
receipt, so it holds only what proves how a statement was collected, never free text about the
customer: a fixed set of keys (:data:`ALLOWED`), each with its type and bound. Any other key is
refused with 422 ``evidence_key_not_allowed`` naming the key (never a value). IP addresses are
cut to their network (IPv4 /24, IPv6 /48) wherever they appear: in the IP keys, and inside the
user agent; the identifier-like values (store, staff, script version, TC string) may not hold
one at all. :func:`clean_evidence` is the one function every door calls (the API through
:func:`vault.consent.service.record_event`, the import, the self-service pages).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from vault.consent.errors import EvidenceContainsContactData, EvidenceKeyNotAllowed, InvalidEvidence

MAX_USER_AGENT = 512
MAX_TC_STRING = 2048
# The IP keys: the first is the one the vault writes itself (the self-service pages); the others
# are the names apps already send. Every one is truncated on write.
IP_KEYS = ("ip", "ip_address", "client_ip", "remote_addr", "remote_ip")

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}")
# who started the self-service session a change was made in (vault.selfservice.sessions)
_SESSION_ORIGIN = re.compile(r"customer|cli|(client|staff):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}")  # BCP 47, short
_TC_STRING = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")  # IAB TCF: base64url segments
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_VALUE = re.compile(r"^\s*(\+|00|0)[\d\s()/.-]{6,}$")
# Candidates inside free text; each is checked with ipaddress before it is replaced.
_IPV4_IN_TEXT = re.compile(r"(?<!\d)\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
_IPV6_IN_TEXT = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# a plain dotted IPv4 address, exactly as ipaddress accepts it (no leading zeros)
_PLAIN_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def truncate_ip(value: str) -> str:
    """IPv4 to its /24, IPv6 to its /48: enough to see a network, not a household. Takes an
    address or a network (an already truncated value, e.g. from an export, stays as it is)."""
    value = value.strip()
    plain = _PLAIN_IPV4.fullmatch(value)
    if plain is not None:  # the common case, on every consent write: no ipaddress objects
        return f"{plain[1]}.{plain[2]}.{plain[3]}.0/24"
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidEvidence("evidence: the IP address is not valid.") from None
    ip = net.network_address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
        prefix = max(0, net.prefixlen - 96)
    else:
        prefix = net.prefixlen
    if ip.version == 4:
        bits = min(prefix, 24)
        return f"{ipaddress.IPv4Address(int(ip) & (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF)}/{bits}"
    bits = min(prefix, 48)
    mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
    return f"{ipaddress.IPv6Address(int(ip) & mask)}/{bits}"


def _truncate_ips_in_text(text: str) -> str:
    """Every IP address inside free text replaced by its truncated network; one that already
    is its network's address (``Chrome/120.0.0.0``) tells nothing more and stays."""

    def cut(match: re.Match[str]) -> str:
        text = match.group(0)
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return text
        network = truncate_ip(text)
        return text if network.split("/")[0] == str(ip) else network

    return _IPV6_IN_TEXT.sub(cut, _IPV4_IN_TEXT.sub(cut, text))


def _holds_ip(text: str) -> bool:
    return _truncate_ips_in_text(text) != text


def _string(key: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidEvidence(f"evidence '{key}' must be a string.", key=key)
    if len(value) > limit:
        raise InvalidEvidence(f"evidence '{key}' is longer than {limit} characters.", key=key)
    return value


def _ip(key: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidEvidence(f"evidence '{key}' must be an IP address.", key=key)
    try:
        return truncate_ip(value)
    except InvalidEvidence:
        raise InvalidEvidence(f"evidence '{key}' is not a valid IP address.", key=key) from None


def _user_agent(key: str, value: Any) -> str:
    text = " ".join(_string(key, value, MAX_USER_AGENT).split())
    if _CONTROL.search(text):
        raise InvalidEvidence(f"evidence '{key}' must not hold control characters.", key=key)
    if _EMAIL_VALUE.search(text) or _PHONE_VALUE.match(text):
        raise EvidenceContainsContactData(f"evidence '{key}' looks like contact data.", key=key)
    return _truncate_ips_in_text(text)


def _gpc(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidEvidence(f"evidence '{key}' must be true or false.", key=key)
    return value


def _uuid(key: str, value: Any) -> str:
    text = _string(key, value, 36)
    try:
        return str(UUID(text))
    except ValueError:
        raise InvalidEvidence(f"evidence '{key}' must be a UUID.", key=key) from None


def _pattern(pattern: re.Pattern[str], limit: int, what: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = _string(key, value, limit)
        if not pattern.fullmatch(text):
            raise InvalidEvidence(f"evidence '{key}' must be {what}.", key=key)
        if _holds_ip(text):
            raise InvalidEvidence(f"evidence '{key}' must not hold an IP address.", key=key)
        return text

    return check


# key -> its check: the value as stored, or InvalidEvidence naming the key (never the value)
ALLOWED: dict[str, Callable[[str, Any], Any]] = {
    **dict.fromkeys(IP_KEYS, _ip),
    "user_agent": _user_agent,
    "gpc": _gpc,
    "language": _pattern(_LANGUAGE, 35, "a language tag such as 'de' or 'en-GB'"),
    "tc_string": _pattern(_TC_STRING, MAX_TC_STRING, "an IAB TCF consent string (base64url)"),
    "staff_id": _pattern(_IDENTIFIER, 64, "an identifier ([A-Za-z0-9_.-], at most 64)"),
    "store_id": _pattern(_IDENTIFIER, 64, "an identifier ([A-Za-z0-9_.-], at most 64)"),
    "script_version": _pattern(_VERSION, 32, "a version ([A-Za-z0-9_.+-], at most 32)"),
    "session_origin": _pattern(
        _SESSION_ORIGIN, 80, "'customer', 'cli', 'client:<id>' or 'staff:<id>'"
    ),
    # the double opt-in mail whose link the customer followed (the confirmation's evidence)
    "mail_id": _uuid,
}


def clean_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    """The evidence as stored: only :data:`ALLOWED` keys, each value checked and normalised
    (IP addresses truncated, the user agent's whitespace folded). ``None`` values are dropped."""
    if not evidence:
        return {}
    if not isinstance(evidence, Mapping):
        raise InvalidEvidence("evidence must be an object.")
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        check = ALLOWED.get(key) if isinstance(key, str) else None
        if check is None:
            if isinstance(key, str) and _KEY.fullmatch(key):
                raise EvidenceKeyNotAllowed(
                    f"evidence '{key}' is not an allowed key; allowed: {', '.join(ALLOWED)}.",
                    key=key,
                )
            raise EvidenceKeyNotAllowed(f"evidence keys are one of: {', '.join(ALLOWED)}.")
        if value is None:
            continue
        out[key] = check(key, value)
    return out
