"""The one-click unsubscribe token: opens only as made, reveals nothing, costs microseconds."""

from __future__ import annotations

import base64
import os
import time
import uuid

import pytest

from vault.crypto import unsubscribe
from vault.crypto.unsubscribe import InvalidUnsubscribeToken, UnsubscribeTokens

KEY = bytes(range(32))


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_opens_to_its_customer_and_purpose_and_is_deterministic():
    t = UnsubscribeTokens(KEY)
    cid = uuid.uuid4()
    token = t.make(cid, "newsletter")
    assert t.open(token) == (cid, "newsletter")
    assert t.make(cid, "newsletter") == token == t.maker("newsletter")(cid)
    assert t.make(cid, "personalised_offers") != token
    assert t.make(uuid.uuid4(), "newsletter") != token
    long_id = "p" * 63
    assert t.open(t.make(cid, long_id)) == (cid, long_id)
    # URL-safe as it is: no padding, no characters a path needs escaped
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_token_holds_no_customer_id_or_purpose_in_clear():
    t = UnsubscribeTokens(KEY)
    cid = uuid.uuid4()
    token = t.make(cid, "newsletter")
    raw = _raw(token)
    for clear in (cid.bytes, cid.hex.encode(), str(cid).encode(), b"newsletter"):
        assert clear not in raw and clear.decode("latin-1") not in token
    # only the epoch byte is readable, and the length says only the padded purpose length
    assert raw[0] == unsubscribe.CURRENT_EPOCH
    assert len(raw) == 1 + 16 + 16 + 16
    assert len(_raw(t.make(cid, "personalised_offers"))) == 1 + 16 + 16 + 32


def test_another_vaults_key_cannot_open_or_make_a_token():
    cid = uuid.uuid4()
    token = UnsubscribeTokens(KEY).make(cid, "newsletter")
    other = UnsubscribeTokens(os.urandom(32))
    with pytest.raises(InvalidUnsubscribeToken):
        other.open(token)
    assert other.make(cid, "newsletter") != token


def test_every_altered_byte_is_refused():
    t = UnsubscribeTokens(KEY)
    raw = _raw(t.make(uuid.uuid4(), "newsletter"))
    for i in range(len(raw)):
        changed = bytearray(raw)
        changed[i] ^= 0x01
        with pytest.raises(InvalidUnsubscribeToken):
            t.open(_b64(bytes(changed)))


@pytest.mark.parametrize(
    "token",
    ["", "x", "not base64!", "a" * 201, "A" * 64, "%00", "\u00e9" * 40],
)
def test_malformed_tokens_are_refused(token):
    with pytest.raises(InvalidUnsubscribeToken):
        UnsubscribeTokens(KEY).open(token)


def test_other_spellings_and_cut_tokens_are_refused():
    t = UnsubscribeTokens(KEY)
    token = t.make(uuid.uuid4(), "newsletter")
    for variant in (token + "=", token + "==", token[:-1], token[:-4], token + "A" * 4):
        with pytest.raises(InvalidUnsubscribeToken):
            t.open(variant)
    # an unknown epoch byte is refused before any decryption
    raw = bytearray(_raw(token))
    raw[0] = 2
    with pytest.raises(InvalidUnsubscribeToken):
        t.open(_b64(bytes(raw)))


def test_repr_hides_the_key_and_the_instance_is_shared():
    assert "***" in repr(UnsubscribeTokens(KEY))
    assert unsubscribe.for_index_key(KEY) is unsubscribe.for_index_key(KEY)


def test_making_a_token_costs_microseconds():
    make = UnsubscribeTokens(KEY).maker("newsletter")
    ids = [uuid.uuid4() for _ in range(20_000)]
    started = time.perf_counter()
    for cid in ids:
        make(cid)
    per_token = (time.perf_counter() - started) / len(ids)
    assert per_token < 50e-6, f"{per_token * 1e6:.1f} µs a token"  # measured ~4 µs
