"""Key providers. The embedded default is a JSON key file (mode 0600) in the data directory,
created on first start; production passes keys through the environment (or, later, an HSM/KMS
provider behind the same :class:`KeyMaterial` shape)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import datadir
from vault.config import Settings

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


def _derive(seed: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """All the vault's keys. First KEK in ``keks`` order is the primary."""

    keks: dict[str, bytes]
    primary_kek_id: str
    index_key: bytes
    signing_seed: bytes
    _derived: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.primary_kek_id not in self.keks:
            raise KeyConfigError("primary KEK id is not among the KEKs")
        for kid, key in self.keks.items():
            if len(key) != _KEY_BYTES:
                raise KeyConfigError(f"KEK {kid!r} must be {_KEY_BYTES} bytes")
        if len(self.index_key) != _KEY_BYTES or len(self.signing_seed) != _KEY_BYTES:
            raise KeyConfigError("index key and signing seed must be 32 bytes")

    def __repr__(self) -> str:
        return f"KeyMaterial(keks=[{', '.join(self.keks)}], primary={self.primary_kek_id}, ***)"

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
            return KeyMaterial(
                keks=ordered,
                primary_kek_id=primary,
                index_key=_unb64(doc["index_key"], "index key"),
                signing_seed=_unb64(doc["signing_seed"], "signing seed"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise KeyConfigError(f"key file {self.path} is malformed") from exc

    def rotate(self) -> str:
        """Add a new KEK and make it primary; old KEKs stay so existing DEKs still unwrap."""
        doc = self._read()
        n = 1 + max(int(k[1:]) for k in doc["keks"] if k[1:].isdigit())
        new_id = f"k{n}"
        doc["keks"][new_id] = _b64(secrets.token_bytes(_KEY_BYTES))
        doc["primary"] = new_id
        self._write(doc)
        return new_id


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
    """Keys from ``VAULT_MASTER_KEYS`` (+ ``VAULT_INDEX_KEY``, ``VAULT_SIGNING_SEED``) if set,
    else from the local key file, created on first start when ``create`` is true."""
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
