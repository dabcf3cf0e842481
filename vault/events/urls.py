"""Webhook URL checks against server-side request forgery.

A webhook URL must be ``http`` or ``https``, carry no credentials, and every address its host
resolves to (``socket.getaddrinfo``) must be a public unicast address: private, loopback,
link-local, multicast, reserved, unspecified and shared (CGNAT) ranges are refused, IPv4-mapped
IPv6 addresses judged as the IPv4 address they carry. Hosts named in
``VAULT_WEBHOOK_ALLOWED_HOSTS`` skip the address check (an internal newsletter tool, a test
receiver on loopback). The check runs when a subscription is made and again before every
delivery, and the worker connects to the address it checked (no second resolution that DNS
rebinding could change); redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vault.errors import VaultError

Resolver = Callable[..., list[tuple[Any, ...]]]


class WebhookUrlInvalid(VaultError):
    code = "webhook_url_invalid"
    status = 422
    default_detail = "The webhook URL must be an absolute http or https URL without credentials."


class WebhookUrlForbidden(VaultError):
    code = "webhook_url_forbidden"
    status = 422
    default_detail = (
        "The webhook URL points to a private, loopback, link-local or otherwise non-public "
        "address; name the host in VAULT_WEBHOOK_ALLOWED_HOSTS to allow it."
    )


class WebhookHostUnresolvable(VaultError):
    code = "webhook_host_unresolvable"
    status = 422
    default_detail = "The host of the webhook URL does not resolve."


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to call the host (SNI, Host)."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    allowlisted: bool

    def pinned_url(self) -> str:
        """The URL with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip = ipaddress.ip_address(self.address)
        netloc = f"[{ip}]" if ip.version == 6 else str(ip)
        netloc = f"{netloc}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_allowed_hosts(value: str | Iterable[str]) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(h.strip().lower().strip("[]") for h in items if h.strip())


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_url(
    url: str, *, allowed_hosts: frozenset[str], resolve: Resolver = socket.getaddrinfo
) -> Target:
    """Parse and check ``url``; raises WebhookUrlInvalid, WebhookUrlForbidden or
    WebhookHostUnresolvable (all 422)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise WebhookUrlInvalid() from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookUrlInvalid("The webhook URL must use http or https.")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlInvalid("The webhook URL must not carry credentials.")
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookUrlInvalid("The webhook URL has no host.")
    port = port or (443 if scheme == "https" else 80)
    allowlisted = host in allowed_hosts
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise WebhookHostUnresolvable() from None
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        try:
            addresses.append(ipaddress.ip_address(raw))
        except ValueError:
            continue
    if not addresses:
        raise WebhookHostUnresolvable()
    if not allowlisted and not all(is_public(ip) for ip in addresses):
        raise WebhookUrlForbidden()
    return Target(
        url=url.strip(),
        scheme=scheme,
        host=host,
        port=port,
        address=str(addresses[0]),
        allowlisted=allowlisted,
    )
