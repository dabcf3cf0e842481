import hashlib
import hmac
import secrets
import uuid

import pytest

from vault.crypto.envelope import Envelope
from vault.crypto.keys import KeyMaterial
from vault.errors import DecryptionError


def material(**overrides) -> KeyMaterial:
    values = {
        "keks": {"k1": secrets.token_bytes(32)},
        "primary_kek_id": "k1",
        "index_key": secrets.token_bytes(32),
        "signing_seed": secrets.token_bytes(32),
    }
    values.update(overrides)
    return KeyMaterial(**values)


def test_value_roundtrip_and_fresh_nonce(keyring):
    env = Envelope(keyring.material())
    cid = uuid.uuid4()
    key, wrapped, kek_id = env.new_data_key(cid)
    a, b = key.encrypt("email", b"x@example.de"), key.encrypt("email", b"x@example.de")
    assert a != b  # fresh nonce per write
    assert b"x@example.de" not in a
    again = env.unwrap(cid, wrapped, kek_id)
    assert again.decrypt("email", a) == b"x@example.de"


@pytest.mark.parametrize(
    "move", ["other_customer", "other_attribute", "flipped_byte", "truncated", "version"]
)
def test_moved_or_altered_ciphertext_fails_as_integrity_error(keyring, move):
    env = Envelope(keyring.material())
    c1, c2 = uuid.uuid4(), uuid.uuid4()
    k1, _, _ = env.new_data_key(c1)
    k2, _, _ = env.new_data_key(c2)
    blob = k1.encrypt("last_name", b"Mueller")
    with pytest.raises(DecryptionError):
        if move == "other_customer":
            k2.decrypt("last_name", blob)
        elif move == "other_attribute":
            k1.decrypt("first_name", blob)
        elif move == "flipped_byte":
            k1.decrypt("last_name", blob[:-1] + bytes([blob[-1] ^ 1]))
        elif move == "truncated":
            k1.decrypt("last_name", blob[:20])
        else:
            k1.decrypt("last_name", b"\x02" + blob[1:])


def test_wrapped_dek_is_bound_to_customer_and_kek(keyring):
    env = Envelope(keyring.material())
    c1, c2 = uuid.uuid4(), uuid.uuid4()
    _, wrapped, kek_id = env.new_data_key(c1)
    with pytest.raises(DecryptionError):
        env.unwrap(c2, wrapped, kek_id)
    with pytest.raises(DecryptionError):
        env.unwrap(c1, wrapped, "k9")
    with pytest.raises(DecryptionError):
        env.unwrap(c1, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), kek_id)
    with pytest.raises(DecryptionError):
        env.unwrap(c1, b"\x02" + wrapped[1:], kek_id)


def test_rewrap_under_rotated_kek_on_every_provider(keyring):
    env1 = Envelope(keyring.material())
    cid = uuid.uuid4()
    key, wrapped, old = env1.new_data_key(cid)
    blob = key.encrypt("email", b"a@b.de")
    env2 = Envelope(keyring.rotate())
    assert env2.primary_kek_id != old
    rewrapped, kek_id = env2.rewrap(cid, wrapped, old)
    assert kek_id == env2.primary_kek_id and rewrapped != wrapped
    assert env2.unwrap(cid, rewrapped, kek_id).decrypt("email", blob) == b"a@b.de"
    assert env2.unwrap(cid, wrapped, old).decrypt("email", blob) == b"a@b.de"  # old KEK kept
    with pytest.raises(DecryptionError):  # the new wrapping is bound to the new KEK id
        env2.unwrap(cid, rewrapped, old)


def test_a_rotation_elsewhere_is_seen_at_once_when_a_row_names_it(keyring):
    env = Envelope(keyring.material(), reload=keyring.material)
    newer = Envelope(keyring.rotate())
    cid = uuid.uuid4()
    _, wrapped, kek_id = newer.new_data_key(cid)
    assert kek_id != env.primary_kek_id
    assert env.unwrap(cid, wrapped, kek_id).customer_id == cid


def test_rewrap_moves_dek_to_new_primary_and_values_still_decrypt():
    m1 = material()
    env1 = Envelope(m1)
    cid = uuid.uuid4()
    key, wrapped, _ = env1.new_data_key(cid)
    blob = key.encrypt("email", b"a@b.de")
    new = secrets.token_bytes(32)
    env2 = Envelope(
        material(
            keks={"k2": new, "k1": m1.keks["k1"]},
            primary_kek_id="k2",
            index_key=m1.index_key,
            signing_seed=m1.signing_seed,
        )
    )
    rewrapped, kek_id = env2.rewrap(cid, wrapped, "k1")
    assert kek_id == "k2"
    assert env2.unwrap(cid, rewrapped, "k2").decrypt("email", blob) == b"a@b.de"
    with pytest.raises(DecryptionError):  # the old KEK cannot open the new wrapping
        env1.unwrap(cid, rewrapped, "k1")


def test_blind_index_is_keyed_hmac(keyring):
    m = keyring.material()
    env = Envelope(m)
    digest = env.blind_index("email", "alice@example.de")
    assert digest == hmac.new(m.index_key, b"email\x00alice@example.de", hashlib.sha256).digest()
    assert digest != hashlib.sha256(b"alice@example.de").digest()
    other = Envelope(material())
    assert other.blind_index("email", "alice@example.de") != digest


def test_nothing_secret_in_reprs(keyring):
    m = keyring.material()
    env = Envelope(m)
    key, _, _ = env.new_data_key(uuid.uuid4())
    secrets_ = [m.index_key, m.signing_seed, *m.keks.values()]
    for obj in (m, env, key, m.provider):
        text = repr(obj)
        assert "***" in text
        for raw in secrets_:
            assert raw.hex() not in text and str(raw) not in text
