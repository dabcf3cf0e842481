"""Webhook URL checks against server-side request forgery.

A webhook URL must be ``http`` or ``https``, carry no credentials, name a port in
``VAULT_WEBHOOK_ALLOWED_PORTS`` (default 80, 443, 8080, 8443; port 0 never), and every address
its host resolves to (``socket.getaddrinfo``) must be a public unicast address: private,
loopback, link-local, multicast, reserved, unspecified and shared (CGNAT) ranges are refused.
An IPv6 address that carries an IPv4 address is judged by that IPv4 address too: IPv4-mapped
(``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``), 6to4
(``2002:AABB:CCDD::/48``) and Teredo (``2001:0::/32``, server and client) — otherwise
``2002:7f00:1::`` would reach 127.0.0.1 through a 6to4 relay, and Python 3.11 counts 2002::/16
as global. Hosts named in ``VAULT_WEBHOOK_ALLOWED_HOSTS`` skip the address and the port check
(the operator vouches for them: an internal newsletter tool, a test receiver on loopback). The
check runs when a subscription is made and again before every delivery, and the worker
connects to the address it checked (no second resolution that DNS rebinding could change);
redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vault.config import Settings, parse_ports
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


class WebhookPortForbidden(VaultError):
    code = "webhook_port_forbidden"
    status = 422
    default_detail = (
        "The webhook URL's port is not allowed; VAULT_WEBHOOK_ALLOWED_PORTS names the ports "
        "webhooks may use."
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


@dataclass(frozen=True)
class Allowlist:
    """What the operator allows beyond public addresses on the usual ports."""

    hosts: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset({80, 443, 8080, 8443})

    @classmethod
    def of(cls, settings: Settings) -> Allowlist:
        """From ``VAULT_WEBHOOK_ALLOWED_HOSTS`` and ``VAULT_WEBHOOK_ALLOWED_PORTS``."""
        return cls(
            hosts=parse_allowed_hosts(settings.webhook_allowed_hosts),
            ports=parse_ports(settings.webhook_allowed_ports),
        )


_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d, deprecated (RFC 4291 2.5.5.1)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, which a relay or translator would reach."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client), the client de-obfuscated
    if (ip in _COMPATIBLE and int(ip) > 1) or ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the IPv4 address itself, as the socket reaches it
            return is_public(ip.ipv4_mapped)
        if not all(is_public(inner) for inner in embedded_ipv4(ip)):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_url(url: str, *, allow: Allowlist, resolve: Resolver = socket.getaddrinfo) -> Target:
    """Parse and check ``url``; raises WebhookUrlInvalid, WebhookPortForbidden,
    WebhookUrlForbidden or WebhookHostUnresolvable (all 422)."""
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
    if port == 0:
        raise WebhookUrlInvalid("The webhook URL's port must be 1 to 65535.")
    if port is None:
        port = 443 if scheme == "https" else 80
    allowlisted = host in allow.hosts
    if not allowlisted and port not in allow.ports:
        ports = ", ".join(map(str, sorted(allow.ports))) or "none"
        raise WebhookPortForbidden(
            f"The webhook URL's port is not allowed; allowed ports: {ports} "
            "(VAULT_WEBHOOK_ALLOWED_PORTS)."
        )
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
