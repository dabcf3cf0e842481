"""Webhook URL checks: every resolved address must be public unless allowlisted."""

from __future__ import annotations

import ipaddress

import pytest

from vault.config import Settings
from vault.events.urls import (
    Allowlist,
    WebhookHostUnresolvable,
    WebhookPortForbidden,
    WebhookUrlForbidden,
    WebhookUrlInvalid,
    check_url,
    embedded_ipv4,
    parse_allowed_hosts,
)

NONE = Allowlist()  # nothing allowlisted, the default ports


def _resolver(*addresses: str):
    def resolve(host, port, **kw):
        return [(2, 1, 6, "", (a, port)) for a in addresses]

    return resolve


def test_every_resolved_address_must_be_public():
    ok = check_url("https://hooks.example/x", allow=NONE, resolve=_resolver("93.184.216.34"))
    assert ok.address == "93.184.216.34" and ok.port == 443
    assert ok.pinned_url() == "https://93.184.216.34:443/x"
    assert ok.host_header() == "hooks.example"
    with pytest.raises(WebhookUrlForbidden):
        check_url(
            "https://hooks.example/x",
            allow=NONE,
            resolve=_resolver("93.184.216.34", "10.1.2.3"),
        )
    allowed = check_url(
        "https://Hooks.Example/x",
        allow=Allowlist(hosts=parse_allowed_hosts("hooks.example, other")),
        resolve=_resolver("10.1.2.3"),
    )
    assert allowed.allowlisted and allowed.address == "10.1.2.3"


def test_unresolvable_and_empty_resolution():
    def fail(*a, **k):
        raise OSError("nope")

    with pytest.raises(WebhookHostUnresolvable):
        check_url("http://x.example/", allow=NONE, resolve=fail)
    with pytest.raises(WebhookHostUnresolvable):
        check_url("http://x.example/", allow=NONE, resolve=_resolver())


# --- issue 17: addresses that wrap an IPv4 address, ports -----------------------------------

WRAPPED_NON_PUBLIC = {
    # 6to4 (2002:AABB:CCDD::/48): a 6to4 relay would deliver to the IPv4 address inside
    "6to4 of 127.0.0.1": "2002:7f00:1::1",
    "6to4 of 10.0.0.1": "2002:a00:1::",
    "6to4 of 192.168.1.1": "2002:c0a8:101:1::5",
    "6to4 of 169.254.169.254 (cloud metadata)": "2002:a9fe:a9fe::",
    "6to4 of 172.16.0.1": "2002:ac10:1::",
    # Teredo (2001:0::/32): server IPv4, flags, port, client IPv4 XOR 0xffffffff
    "Teredo, client 10.0.0.1": "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    "Teredo, client 127.0.0.1": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "Teredo, server 192.168.0.1": "2001:0:c0a8:1:8000:63bf:f7f7:f7f7",
    # IPv4-mapped and IPv4-compatible (already covered before issue 17; kept covered)
    "mapped 127.0.0.1": "::ffff:127.0.0.1",
    "mapped 10.0.0.1": "::ffff:10.0.0.1",
    "mapped 169.254.169.254": "::ffff:169.254.169.254",
    "compatible 127.0.0.1": "::127.0.0.1",
    "compatible 10.0.0.1": "::10.0.0.1",
    # NAT64 well-known prefix: the translator would connect to 10.0.0.1
    "NAT64 of 10.0.0.1": "64:ff9b::a00:1",
}


@pytest.mark.parametrize("address", WRAPPED_NON_PUBLIC.values(), ids=WRAPPED_NON_PUBLIC.keys())
def test_ipv6_addresses_wrapping_a_non_public_ipv4_address_are_refused(address):
    with pytest.raises(WebhookUrlForbidden):
        check_url("https://hooks.example/x", allow=NONE, resolve=_resolver(address))
    # the same as a literal in the URL
    with pytest.raises(WebhookUrlForbidden):
        check_url(f"https://[{address}]/x", allow=NONE, resolve=_resolver(address))


def test_the_wrapped_ipv4_addresses_are_found():
    def inner(a: str) -> list[str]:
        return [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(a))]

    assert inner("2002:7f00:1::1") == ["127.0.0.1"]
    assert inner("2001:0:4136:e378:8000:63bf:f5ff:fffe") == ["65.54.227.120", "10.0.0.1"]
    assert inner("::ffff:10.0.0.1") == ["10.0.0.1"]
    assert inner("::10.0.0.1") == ["10.0.0.1"]
    assert inner("64:ff9b::a00:1") == ["10.0.0.1"]
    assert inner("2606:4700::1111") == []
    assert inner("::1") == [] and inner("::") == []


def test_public_addresses_still_pass_mapped_ones_as_ipv4():
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"):
        target = check_url("https://hooks.example/x", allow=NONE, resolve=_resolver(address))
        assert ipaddress.ip_address(target.address) == ipaddress.ip_address(address)


def test_port_zero_is_invalid_even_for_an_allowlisted_host():
    """Port 0 used to become the scheme's default port; it names no service at all."""
    allow = Allowlist(hosts=frozenset({"127.0.0.1"}))
    for url in ("http://hooks.example:0/x", "https://127.0.0.1:0/x"):
        with pytest.raises(WebhookUrlInvalid) as err:
            check_url(url, allow=allow, resolve=_resolver("93.184.216.34"))
        assert err.value.status == 422 and err.value.code == "webhook_url_invalid"


def test_only_allowed_ports_unless_the_host_is_allowlisted():
    public = _resolver("93.184.216.34")
    for port in (80, 443, 8080, 8443):
        assert check_url(f"http://hooks.example:{port}/", allow=NONE, resolve=public).port == port
    assert check_url("https://hooks.example/", allow=NONE, resolve=public).port == 443
    for port in (22, 25, 6379, 9, 65535):
        with pytest.raises(WebhookPortForbidden) as err:
            check_url(f"http://hooks.example:{port}/", allow=NONE, resolve=public)
        assert err.value.code == "webhook_port_forbidden" and err.value.status == 422
        assert "80, 443, 8080, 8443" in err.value.detail
    own = Allowlist(hosts=frozenset({"crm.internal"}), ports=frozenset({443}))
    assert check_url("http://crm.internal:9000/", allow=own, resolve=public).port == 9000
    with pytest.raises(WebhookPortForbidden):
        check_url("http://hooks.example:8080/", allow=own, resolve=public)


def test_the_port_is_refused_before_the_host_is_resolved():
    def must_not_resolve(*a, **k):
        raise AssertionError("resolved")

    with pytest.raises(WebhookPortForbidden):
        check_url("http://hooks.example:25/", allow=NONE, resolve=must_not_resolve)


def test_allowed_ports_setting(tmp_path):
    s = Settings(data_dir=tmp_path, webhook_allowed_ports=" 443, 8443 ,", _env_file=None)
    assert Allowlist.of(s).ports == {443, 8443}
    assert Allowlist.of(Settings(data_dir=tmp_path, _env_file=None)).ports == {80, 443, 8080, 8443}
    for bad in ("0", "65536", "http", "80;443", "-1", "\u0664\u0664\u0663"):
        with pytest.raises(ValueError):
            Settings(data_dir=tmp_path, webhook_allowed_ports=bad, _env_file=None)
