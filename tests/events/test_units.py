"""Secrets at rest, URL checks, backoff and settings."""

from __future__ import annotations

import random
import uuid

import pytest
from pydantic import ValidationError

from vault.config import Settings
from vault.errors import DecryptionError
from vault.events import queue
from vault.events.secrets import decrypt_secret, encrypt_secret, generate_secret
from vault.events.urls import (
    WebhookHostUnresolvable,
    WebhookUrlForbidden,
    check_url,
    parse_allowed_hosts,
)


def test_secret_roundtrip_and_binding(runtime):
    secret = generate_secret()
    assert secret.startswith("whsec_")
    a, b = uuid.uuid4(), uuid.uuid4()
    blob = encrypt_secret(runtime.keys, a, secret)
    assert secret.encode() not in blob
    assert encrypt_secret(runtime.keys, a, secret) != blob  # fresh nonce
    assert decrypt_secret(runtime.keys, a, blob) == secret
    with pytest.raises(DecryptionError):
        decrypt_secret(runtime.keys, b, blob)  # moved to another subscription
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        decrypt_secret(runtime.keys, a, tampered)


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


def test_backoff_grows_with_jitter_and_a_cap():
    s = Settings(webhook_backoff_base=1, webhook_backoff_max=10, _env_file=None)
    rng = random.Random(1)
    delays = [queue.backoff(n, s, rng).total_seconds() for n in range(1, 8)]
    for n, d in enumerate(delays, 1):
        full = min(10, 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(delays) <= 10


def test_the_lease_must_outlast_a_request():
    with pytest.raises(ValidationError):
        Settings(webhook_timeout=30, webhook_lease_seconds=30, _env_file=None)
