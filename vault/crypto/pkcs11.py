"""KEKs in a PKCS#11 token (``VAULT_KEY_PROVIDER=pkcs11``; python-pkcs11, SoftHSM2 in tests).

* Each KEK is an AES-256 secret-key object on the token, labelled with its KEK id (``k1``,
  ``k2`` …), generated there with ``CKA_SENSITIVE`` true and ``CKA_EXTRACTABLE`` false: its bytes
  never leave the token. The highest id is primary; ``CKA_START_DATE`` is its creation day.
* DEKs are sealed and opened BY THE TOKEN with ``CKM_AES_GCM`` (nonce and associated data from
  the envelope), so a wrapped DEK has exactly the key file's format. SoftHSM2 2.6 has no
  ``CKM_AES_KEY_WRAP_PAD`` for encrypt/decrypt, and GCM keeps the associated data binding
  (customer id, KEK id) that key wrap cannot carry.
* The blind-index key and the signing seed are not KEKs: they are HMAC-SHA256 outputs of a
  non-extractable generic secret on the token (label ``cv-derive``), computed at start. Nothing
  secret is written to the data directory under this provider.
* One provider per process and token (a PKCS#11 library is initialised once per process); one
  token session per thread (an operation's state belongs to its session).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from vault.errors import DecryptionError

if TYPE_CHECKING:
    from vault.config import Settings

DERIVE_LABEL = "cv-derive"
_KEK_LABEL = re.compile(r"^k(\d+)$")
_TAG_BITS = 128
_INDEX_INFO = b"consent-vault/index-key/v1"
_SEED_INFO = b"consent-vault/signing-seed/v1"

_providers: dict[tuple[str, str], TokenKeks] = {}
_providers_lock = threading.Lock()


class TokenError(Exception):
    """The token is unusable (library, label, PIN) or lacks what the vault needs."""


def _lib() -> Any:
    import pkcs11  # imported only when the provider is chosen

    return pkcs11


def token_keks(settings: Settings, *, create: bool = True) -> TokenKeks:
    """This process's provider for the configured token, its KEK list read afresh (a KEK made
    by ``vault keys rotate`` in another process shows up here)."""
    assert settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin
    key = (str(settings.pkcs11_module), settings.pkcs11_token_label)
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = TokenKeks(
                str(settings.pkcs11_module),
                settings.pkcs11_token_label,
                settings.pkcs11_pin.get_secret_value(),
            )
            _providers[key] = provider
    provider.refresh(create=create)
    return provider


def forget_providers() -> None:
    """Drop this process's providers (tests that wipe the token between cases)."""
    with _providers_lock:
        _providers.clear()


_CREATED = b"cv-created:"


def _created(key: Any, p11: Any) -> datetime | None:
    """A KEK's creation time: exact from its ``CKA_ID`` (``cv-created:<ISO time>``, set by the
    vault), else the day of ``CKA_START_DATE``, else unknown."""
    try:
        ident = bytes(key[p11.Attribute.ID] or b"")
        if ident.startswith(_CREATED):
            return datetime.fromisoformat(ident[len(_CREATED) :].decode())
    except (p11.PKCS11Error, ValueError, UnicodeDecodeError):
        pass
    try:
        day = key[p11.Attribute.START_DATE]
    except p11.PKCS11Error:
        return None
    return datetime.combine(day, time(), tzinfo=UTC) if isinstance(day, date) else None


class TokenKeks:
    """The :class:`vault.crypto.keys.KekProvider` of a PKCS#11 token."""

    name = "pkcs11"

    def __init__(self, module: str, label: str, pin: str):
        p11 = _lib()
        try:
            self._token = p11.lib(module).get_token(token_label=label)
        except p11.PKCS11Error as exc:
            raise TokenError(f"no PKCS#11 token labelled {label!r} in {module}") from exc
        self._pin = pin
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ids: dict[str, datetime | None] = {}
        self.primary_kek_id = ""

    def __repr__(self) -> str:
        return f"TokenKeks(primary={self.primary_kek_id}, ***)"

    # --- sessions and objects -------------------------------------------------------------

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            p11 = _lib()
            try:
                try:
                    session = self._token.open(user_pin=self._pin, rw=True)
                except p11.UserAlreadyLoggedIn:  # login is per process, not per session
                    session = self._token.open(rw=True)
            except p11.PKCS11Error as exc:
                raise TokenError("cannot log in to the PKCS#11 token (PIN?)") from exc
            self._local.session = session
            self._local.keys = {}
        return session

    def _aes_keys(self) -> dict[str, Any]:
        p11 = _lib()
        objects = self._session().get_objects(
            {
                p11.Attribute.CLASS: p11.ObjectClass.SECRET_KEY,
                p11.Attribute.KEY_TYPE: p11.KeyType.AES,
            }
        )
        return {o.label: o for o in objects if _KEK_LABEL.match(o.label or "")}

    def _key(self, kek_id: str) -> Any:
        if kek_id not in self._ids:
            raise KeyError(kek_id)
        self._session()
        key = self._local.keys.get(kek_id)
        if key is None:
            key = self._aes_keys().get(kek_id)
            if key is None:
                raise KeyError(kek_id)
            self._local.keys[kek_id] = key
        return key

    def _generate(self, kek_id: str, now: datetime) -> Any:
        p11 = _lib()
        a = p11.Attribute
        return self._session().generate_key(
            p11.KeyType.AES,
            256,
            label=kek_id,
            id=_CREATED + now.isoformat().encode(),
            store=True,
            template={
                a.SENSITIVE: True,
                a.EXTRACTABLE: False,
                a.PRIVATE: True,
                a.ENCRYPT: True,
                a.DECRYPT: True,
                a.WRAP: False,
                a.UNWRAP: False,
                a.SIGN: False,
                a.VERIFY: False,
                a.DERIVE: False,
                a.START_DATE: now.date(),
            },
        )

    # --- the KEK list ---------------------------------------------------------------------

    def refresh(self, *, create: bool = True) -> None:
        p11 = _lib()
        with self._lock:
            keys = self._aes_keys()
            if not keys:
                if not create:
                    raise TokenError("the PKCS#11 token holds no KEK; start the vault once")
                keys = {"k1": self._generate("k1", datetime.now(UTC))}
            ids = {}
            for kid, key in sorted(keys.items(), key=lambda kv: -int(kv[0][1:])):
                ids[kid] = _created(key, p11)
            self._ids = ids
            self.primary_kek_id = next(iter(ids))
            self._local.keys = {}

    def kek_ids(self) -> list[str]:
        return list(self._ids)

    def created(self) -> dict[str, datetime]:
        return {kid: at for kid, at in self._ids.items() if at is not None}

    def attributes(self, kek_id: str) -> dict[str, Any]:
        """``sensitive``/``extractable`` of a KEK object (what the tests assert)."""
        p11 = _lib()
        key = self._key(kek_id)
        return {
            "sensitive": key[p11.Attribute.SENSITIVE],
            "extractable": key[p11.Attribute.EXTRACTABLE],
            "never_extractable": key[p11.Attribute.NEVER_EXTRACTABLE],
        }

    def rotate(self, now: datetime | None = None) -> str:
        """Generate a new KEK on the token; it is primary (the highest id)."""
        n = 1 + max((int(k[1:]) for k in self._aes_keys()), default=0)
        new_id = f"k{n}"
        self._generate(new_id, now or datetime.now(UTC))
        self.refresh()
        return new_id

    def retire(self, kek_id: str) -> None:
        """Destroy a KEK that is not primary (the caller checked that no DEK is under it)."""
        self.refresh()
        if kek_id == self.primary_kek_id:
            raise TokenError(f"{kek_id} is the primary KEK")
        key = self._aes_keys().get(kek_id)
        if key is None:
            raise KeyError(kek_id)
        key.destroy()
        self.refresh()

    # --- the KekProvider operations -------------------------------------------------------

    def seal(self, kek_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        p11 = _lib()
        key = self._key(kek_id)
        params = p11.GCMParams(nonce, aad, _TAG_BITS)
        return key.encrypt(plaintext, mechanism=p11.Mechanism.AES_GCM, mechanism_param=params)

    def open(self, kek_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        p11 = _lib()
        key = self._key(kek_id)
        params = p11.GCMParams(nonce, aad, _TAG_BITS)
        try:
            return key.decrypt(ciphertext, mechanism=p11.Mechanism.AES_GCM, mechanism_param=params)
        except p11.PKCS11Error:
            raise DecryptionError() from None

    # --- the index key and signing seed ---------------------------------------------------

    def derived_secrets(self) -> tuple[bytes, bytes]:
        """(blind-index key, signing seed): HMAC-SHA256 of fixed labels under the token's
        non-extractable ``cv-derive`` secret (made on first start)."""
        p11 = _lib()
        a = p11.Attribute
        session = self._session()
        with self._lock:
            found = list(
                session.get_objects(
                    {
                        a.CLASS: p11.ObjectClass.SECRET_KEY,
                        a.KEY_TYPE: p11.KeyType.GENERIC_SECRET,
                        a.LABEL: DERIVE_LABEL,
                    }
                )
            )
            if found:
                secret = found[0]
            else:
                secret = session.generate_key(
                    p11.KeyType.GENERIC_SECRET,
                    256,
                    label=DERIVE_LABEL,
                    store=True,
                    template={
                        a.SENSITIVE: True,
                        a.EXTRACTABLE: False,
                        a.PRIVATE: True,
                        a.SIGN: True,
                        a.ENCRYPT: False,
                        a.DECRYPT: False,
                        a.DERIVE: False,
                    },
                )
        mech = p11.Mechanism.SHA256_HMAC
        return secret.sign(_INDEX_INFO, mechanism=mech), secret.sign(_SEED_INFO, mechanism=mech)
