"""Webhook URL checks: every resolved address must be public unless allowlisted."""

from __future__ import annotations

import pytest

from vault.events.urls import (
    WebhookHostUnresolvable,
    WebhookUrlForbidden,
    check_url,
    parse_allowed_hosts,
)


def _resolver(*addresses: str):
    def resolve(host, port, **kw):
        return [(2, 1, 6, "", (a, port)) for a in addresses]

    return resolve


def test_every_resolved_address_must_be_public():
    ok = check_url(
        "https://hooks.example/x", allowed_hosts=frozenset(), resolve=_resolver("93.184.216.34")
    )
    assert ok.address == "93.184.216.34" and ok.port == 443
    assert ok.pinned_url() == "https://93.184.216.34:443/x"
    assert ok.host_header() == "hooks.example"
    with pytest.raises(WebhookUrlForbidden):
        check_url(
            "https://hooks.example/x",
            allowed_hosts=frozenset(),
            resolve=_resolver("93.184.216.34", "10.1.2.3"),
        )
    allowed = check_url(
        "https://Hooks.Example/x",
        allowed_hosts=parse_allowed_hosts("hooks.example, other"),
        resolve=_resolver("10.1.2.3"),
    )
    assert allowed.allowlisted and allowed.address == "10.1.2.3"


def test_unresolvable_and_empty_resolution():
    def fail(*a, **k):
        raise OSError("nope")

    with pytest.raises(WebhookHostUnresolvable):
        check_url("http://x.example/", allowed_hosts=frozenset(), resolve=fail)
    with pytest.raises(WebhookHostUnresolvable):
        check_url("http://x.example/", allowed_hosts=frozenset(), resolve=_resolver())
