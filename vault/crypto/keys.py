"""Key providers. The embedded default is a JSON key file (mode 0600) in the data directory,
created on first start; production passes keys through the environment or keeps the KEKs in a
PKCS#11 token (:mod:`vault.crypto.pkcs11`, ``VAULT_KEY_PROVIDER=pkcs11``).

A :class:`KekProvider` seals and opens DEKs under a named KEK (AES-256-GCM, the caller's nonce
and associated data); :class:`FileKeks` does it in memory with the key file's or the
environment's KEK bytes, the PKCS#11 provider asks the token. The wrap format around it is the
envelope's (:mod:`vault.crypto.envelope`) and the same for every provider."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import datadir
from vault.config import Settings
from vault.crypto import pkcs11
from vault.errors import DecryptionError

KEY_FILE_NAME = "keys.json"
_KEY_BYTES = 32


class KeyConfigError(Exception):
    """The key configuration is unusable (missing, malformed, wrong length)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise KeyConfigError(f"{what} is not valid base64") from exc
    if len(raw) != _KEY_BYTES:
        raise KeyConfigError(f"{what} must be {_KEY_BYTES} bytes, got {len(raw)}")
    return raw


class KekProvider(Protocol):
    """Where the KEKs live. ``seal``/``open`` are AES-256-GCM under KEK ``kek_id`` with the
    caller's 12-byte nonce and associated data; ``open`` raises :class:`DecryptionError` for a
    wrong tag, both raise ``KeyError`` for a KEK they do not hold (not yet seen after a
    rotation, or retired)."""

    name: str
    primary_kek_id: str

    def kek_ids(self) -> list[str]: ...

    def seal(self, kek_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, kek_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes: ...


class FileKeks:
    """KEK bytes in process memory (the key file or ``VAULT_MASTER_KEYS``)."""

    name = "file"

    def __init__(self, keks: dict[str, bytes], primary_kek_id: str):
        self._aead = {kid: AESGCM(raw) for kid, raw in keks.items()}
        self.primary_kek_id = primary_kek_id

    def __repr__(self) -> str:
        return f"FileKeks(primary={self.primary_kek_id}, ***)"

    def kek_ids(self) -> list[str]:
        return list(self._aead)

    def seal(self, kek_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead[kek_id].encrypt(nonce, plaintext, aad)

    def open(self, kek_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        aead = self._aead[kek_id]
        try:
            return aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError() from None


def _derive(seed: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """All the vault's keys. First KEK in ``keks`` order is the primary.

    ``keks`` holds KEK bytes only for the file and environment providers; with ``token`` (the
    PKCS#11 provider) it is empty and the token wraps and unwraps. ``created`` is each KEK's
    creation time where known (key files written before it existed have none)."""

    keks: dict[str, bytes]
    primary_kek_id: str
    index_key: bytes
    signing_seed: bytes
    created: dict[str, datetime] = field(default_factory=dict, compare=False)
    token: KekProvider | None = field(default=None, compare=False)
    _derived: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.token is not None:
            if self.keks:
                raise KeyConfigError("a token provider holds the KEKs: no KEK bytes beside it")
            if self.primary_kek_id != self.token.primary_kek_id:
                raise KeyConfigError("primary KEK id is not the token's")
        elif self.primary_kek_id not in self.keks:
            raise KeyConfigError("primary KEK id is not among the KEKs")
        for kid, key in self.keks.items():
            if len(key) != _KEY_BYTES:
                raise KeyConfigError(f"KEK {kid!r} must be {_KEY_BYTES} bytes")
        if len(self.index_key) != _KEY_BYTES or len(self.signing_seed) != _KEY_BYTES:
            raise KeyConfigError("index key and signing seed must be 32 bytes")

    def __repr__(self) -> str:
        ids = ", ".join(self.kek_ids)
        return f"KeyMaterial(keks=[{ids}], primary={self.primary_kek_id}, ***)"

    @property
    def provider(self) -> KekProvider:
        """Who seals and opens DEKs: the token, or the KEK bytes held here."""
        if self.token is not None:
            return self.token
        if "provider" not in self._derived:
            self._derived["provider"] = FileKeks(self.keks, self.primary_kek_id)
        return self._derived["provider"]  # type: ignore[return-value]

    @property
    def kek_ids(self) -> list[str]:
        return self.token.kek_ids() if self.token is not None else list(self.keks)

    @property
    def jws_key(self) -> ec.EllipticCurvePrivateKey:
        """ES256 key for access tokens and consent receipts, derived from the signing seed."""
        if "jws" not in self._derived:
            scalar = int.from_bytes(_derive(self.signing_seed, b"consent-vault/es256"), "big")
            order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
            self._derived["jws"] = ec.derive_private_key(scalar % (order - 1) + 1, ec.SECP256R1())
        return self._derived["jws"]  # type: ignore[return-value]

    @property
    def jws_kid(self) -> str:
        return "es256-" + _derive(self.signing_seed, b"consent-vault/kid").hex()[:16]

    @property
    def audit_key(self) -> ed25519.Ed25519PrivateKey:
        """Ed25519 key that signs audit checkpoints."""
        if "audit" not in self._derived:
            seed = _derive(self.signing_seed, b"consent-vault/audit-ed25519")
            self._derived["audit"] = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        return self._derived["audit"]  # type: ignore[return-value]

    @property
    def audit_kid(self) -> str:
        return "ed25519-" + _derive(self.signing_seed, b"consent-vault/audit-kid").hex()[:16]


class LocalKeyFile:
    """The embedded default: ``<data_dir>/keys.json``, created with mode 0600 on first use."""

    def __init__(self, path: Path):
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        datadir.ensure_dir(self.path.parent)
        doc = {
            "primary": "k1",
            "keks": {"k1": _b64(secrets.token_bytes(_KEY_BYTES))},
            "index_key": _b64(secrets.token_bytes(_KEY_BYTES)),
            "signing_seed": _b64(secrets.token_bytes(_KEY_BYTES)),
            "created": {"k1": _now_text()},
        }
        self._write(doc, exclusive=True)

    def _write(self, doc: dict, *, exclusive: bool = False) -> None:
        data = json.dumps(doc, indent=2).encode()
        if exclusive:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyConfigError(f"cannot read key file {self.path}") from exc

    def load(self) -> KeyMaterial:
        doc = self._read()
        try:
            keks = {kid: _unb64(v, f"KEK {kid}") for kid, v in doc["keks"].items()}
            primary = doc["primary"]
            # primary first, the rest in file order
            ordered = {primary: keks[primary], **{k: v for k, v in keks.items() if k != primary}}
            created = {
                kid: datetime.fromisoformat(text)
                for kid, text in doc.get("created", {}).items()
                if kid in keks
            }
            return KeyMaterial(
                keks=ordered,
                primary_kek_id=primary,
                index_key=_unb64(doc["index_key"], "index key"),
                signing_seed=_unb64(doc["signing_seed"], "signing seed"),
                created=created,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise KeyConfigError(f"key file {self.path} is malformed") from exc

    def rotate(self, now: datetime | None = None) -> str:
        """Add a new KEK and make it primary; old KEKs stay so existing DEKs still unwrap."""
        doc = self._read()
        n = 1 + max(int(k[1:]) for k in doc["keks"] if k[1:].isdigit())
        new_id = f"k{n}"
        doc["keks"][new_id] = _b64(secrets.token_bytes(_KEY_BYTES))
        doc["primary"] = new_id
        doc.setdefault("created", {})[new_id] = _now_text(now)
        self._write(doc)
        return new_id

    def retire(self, kek_id: str) -> None:
        """Delete a KEK that is not primary (the caller checked that no DEK is under it)."""
        doc = self._read()
        if kek_id not in doc["keks"]:
            raise KeyError(kek_id)
        if kek_id == doc["primary"]:
            raise KeyConfigError(f"{kek_id} is the primary KEK")
        del doc["keks"][kek_id]
        doc.get("created", {}).pop(kek_id, None)
        self._write(doc)

    def stamp_created(self, kek_id: str, now: datetime | None = None) -> None:
        """Give a KEK of an old key file (written before creation times) the time ``now``: its
        epoch starts counting then."""
        doc = self._read()
        if kek_id in doc["keks"] and kek_id not in doc.setdefault("created", {}):
            doc["created"][kek_id] = _now_text(now)
            self._write(doc)


def _now_text(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat()


def parse_master_keys(text: str) -> dict[str, bytes]:
    keks: dict[str, bytes] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kid, sep, value = part.strip().partition(":")
        if not sep or not kid:
            raise KeyConfigError("VAULT_MASTER_KEYS must look like 'id1:base64,id2:base64'")
        keks[kid] = _unb64(value, f"KEK {kid}")
    if not keks:
        raise KeyConfigError("VAULT_MASTER_KEYS names no key")
    return keks


def load_key_material(settings: Settings, *, create: bool = True) -> KeyMaterial:
    """Keys from the PKCS#11 token with ``VAULT_KEY_PROVIDER=pkcs11``; else from
    ``VAULT_MASTER_KEYS`` (+ ``VAULT_INDEX_KEY``, ``VAULT_SIGNING_SEED``) if set, else from the
    local key file, created on first start when ``create`` is true."""
    if settings.key_provider == "pkcs11":
        token = pkcs11.token_keks(settings, create=create)
        index_key, signing_seed = token.derived_secrets()
        if settings.index_key is not None and settings.signing_seed is not None:
            # a vault moved to the token keeps its blind indexes and signing keys
            index_key = _unb64(settings.index_key.get_secret_value(), "VAULT_INDEX_KEY")
            signing_seed = _unb64(settings.signing_seed.get_secret_value(), "VAULT_SIGNING_SEED")
        return KeyMaterial(
            keks={},
            primary_kek_id=token.primary_kek_id,
            index_key=index_key,
            signing_seed=signing_seed,
            created=token.created(),
            token=token,
        )
    if settings.master_keys is not None:
        if settings.index_key is None or settings.signing_seed is None:
            raise KeyConfigError(
                "VAULT_MASTER_KEYS needs VAULT_INDEX_KEY and VAULT_SIGNING_SEED too"
            )
        keks = parse_master_keys(settings.master_keys.get_secret_value())
        return KeyMaterial(
            keks=keks,
            primary_kek_id=next(iter(keks)),
            index_key=_unb64(settings.index_key.get_secret_value(), "VAULT_INDEX_KEY"),
            signing_seed=_unb64(settings.signing_seed.get_secret_value(), "VAULT_SIGNING_SEED"),
        )
    keyfile = LocalKeyFile(settings.data_dir / KEY_FILE_NAME)
    if not keyfile.exists():
        if not create:
            raise KeyConfigError(
                f"no key file at {keyfile.path}; start the vault once to create it"
            )
        keyfile.create()
    return keyfile.load()


def rotate_kek(settings: Settings, now: datetime | None = None) -> str:
    """A new primary KEK in the key file or on the token; its id. ``KeyConfigError`` for keys
    from ``VAULT_MASTER_KEYS`` (the operator rotates those)."""
    if settings.key_provider == "pkcs11":
        return pkcs11.token_keks(settings, create=False).rotate(now)
    if settings.master_keys is not None:
        raise KeyConfigError(
            "keys come from VAULT_MASTER_KEYS: put a new key first in that list, restart, "
            "then run 'vault keys rewrap'"
        )
    keyfile = LocalKeyFile(settings.data_dir / KEY_FILE_NAME)
    if not keyfile.exists():
        raise KeyConfigError(f"no key file at {keyfile.path}")
    return keyfile.rotate(now)


def retire_kek(settings: Settings, kek_id: str) -> None:
    """Delete KEK ``kek_id`` from the key file or destroy it on the token. The caller has made
    sure no DEK is wrapped under it; the primary is refused."""
    keys = load_key_material(settings, create=False)
    if kek_id not in keys.kek_ids:
        raise KeyConfigError(f"no KEK {kek_id!r} (known: {', '.join(keys.kek_ids)})")
    if kek_id == keys.primary_kek_id:
        raise KeyConfigError(f"{kek_id} is the primary KEK: rotate first, then rewrap")
    if settings.key_provider == "pkcs11":
        pkcs11.token_keks(settings, create=False).retire(kek_id)
    elif settings.master_keys is not None:
        raise KeyConfigError(f"keys come from VAULT_MASTER_KEYS: remove {kek_id} there")
    else:
        LocalKeyFile(settings.data_dir / KEY_FILE_NAME).retire(kek_id)


def stamp_primary_created(settings: Settings, keys: KeyMaterial, now: datetime) -> datetime:
    """The primary KEK's creation time; a key file written before creation times gets ``now``
    (its epoch starts counting then)."""
    at = keys.created.get(keys.primary_kek_id)
    if at is not None:
        return at
    if settings.key_provider == "file" and settings.master_keys is None:
        LocalKeyFile(settings.data_dir / KEY_FILE_NAME).stamp_created(keys.primary_kek_id, now)
    return now
