"""Signing and verifying compact JWS: every use of python-jose lives here.

All tokens the vault signs are compact JWS with ES256 under one key derived from the signing seed,
and each kind has its own ``typ`` and audience, so a consent receipt or a magic-link token can never
pass as an access token. Verification allows exactly ES256, requires ``exp``, ``aud``, ``iss``,
``iat`` and ``jti``, checks ``typ`` and ``kid``, and refuses JWE (five segments), ``alg: none``,
HMAC algorithms and any header that points at another key (``jku``, ``x5u``, ``jwk``, ``x5c``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from vault.crypto.keys import KeyMaterial

ALGORITHM = "ES256"
ALLOWED_ALGORITHMS = [ALGORITHM]
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "enc", "zip"})
_MAX_TOKEN_LENGTH = 8192


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_LEEWAY = 5  # seconds of clock skew allowed on exp and iat
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def _canonical(segment: str) -> bool:
    """Whether ``segment`` is base64url exactly as an encoder writes it: the alphabet only, no
    padding, and no stray bits in the last character (which decoders ignore, so one token
    would otherwise have several spellings)."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == segment


def _check_claims(claims: dict[str, Any], max_lifetime: int | None) -> None:
    aud, iat, exp = claims.get("aud"), claims.get("iat"), claims.get("exp")
    if not isinstance(aud, str):
        raise TokenInvalid("aud must be one audience")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise TokenInvalid("iat and exp must be numbers")
    if iat > time.time() + _LEEWAY:
        raise TokenInvalid("issued in the future")
    if max_lifetime is not None and exp - iat > max_lifetime + _LEEWAY:
        raise TokenInvalid("lifetime longer than allowed")


class TokenInvalid(Exception):
    """Any reason a token is not accepted. Carries no part of the token."""


class Signer:
    def __init__(self, keys: KeyMaterial):
        self.kid = keys.jws_kid
        private = keys.jws_key
        self._private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._public_pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        # parsed once: jws.sign would otherwise parse the PEM on every receipt
        self._private_key = jwk.construct(self._private_pem, ALGORITHM)
        self._ec_key = private
        self._headers: dict[str, bytes] = {}
        # the public key too: verifying against the PEM parsed it on every check (~70 us of
        # ~250 us per access token, measured with the full suite running beside; a token's
        # first use pays it, later reads are answered by the verified-token cache)
        self._public_key = jwk.construct(self._public_pem, ALGORITHM)
        public_jwk = self._public_key.to_dict()
        self.public_jwk: dict[str, Any] = {
            **{k: v for k, v in public_jwk.items() if k in ("kty", "crv", "x", "y")},
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid}, ***)"

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        return jwt.encode(
            claims, self._private_key, algorithm=ALGORITHM, headers={"typ": typ, "kid": self.kid}
        )

    def issue(
        self, *, typ: str, audience: str, issuer: str, ttl: int, subject: str, **extra: Any
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            **extra,
        }
        return self.sign(claims, typ=typ)

    def _check_header(self, token: str, typ: str) -> None:
        """Before any signature check: a compact JWS (not JWE) in canonical base64url, exactly
        ES256, this vault's ``kid``, the expected ``typ``, and no header that points at another
        key."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise TokenInvalid("not a compact JWS")
        if not all(_canonical(part) for part in token.split(".")):
            raise TokenInvalid("not canonical base64url")
        try:
            header = jws.get_unverified_header(token)
        except JOSEError:
            raise TokenInvalid("unreadable header") from None
        if (
            header.get("alg") != ALGORITHM
            or header.get("typ") != typ
            or header.get("kid") != self.kid
            or _FORBIDDEN_HEADERS.intersection(header)
        ):
            raise TokenInvalid("header not acceptable")

    def verify(
        self,
        token: str,
        *,
        typ: str,
        audience: str,
        issuer: str,
        max_lifetime: int | None = None,
    ) -> dict[str, Any]:
        """The claims of an acceptable token. Beyond python-jose's checks: every segment in
        canonical base64url (no padding, no other alphabet, no stray trailing bits), ``aud`` a
        single string, ``iat`` not in the future (beyond the leeway), and ``exp - iat`` at most
        ``max_lifetime`` seconds."""
        self._check_header(token, typ)
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=audience,
                issuer=issuer,
                options={
                    "require_exp": True,
                    "require_aud": True,
                    "require_iss": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    "leeway": _LEEWAY,
                },
            )
        except JOSEError:
            raise TokenInvalid("signature or claims not acceptable") from None
        _check_claims(claims, max_lifetime)
        return claims

    def sign_payload(self, payload: dict[str, Any], *, typ: str) -> str:
        """A compact JWS (ES256) over an arbitrary JSON payload (consent receipts), in the
        form python-jose writes and verifies: the same sorted header, ``r || s`` signature.
        Built here on pyca/cryptography directly (the receipt is signed on every consent
        write: python-jose's JSON and key wrapping cost as much as the signature itself);
        :meth:`verify_payload` still checks it through python-jose."""
        header = self._headers.get(typ)
        if header is None:
            header = self._headers[typ] = _b64(
                orjson.dumps({"alg": ALGORITHM, "kid": self.kid, "typ": typ})
            )
        signing_input = header + b"." + _b64(orjson.dumps(payload))
        r, s = decode_dss_signature(self._ec_key.sign(signing_input, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return (signing_input + b"." + _b64(signature)).decode("ascii")

    def verify_payload(self, token: str, *, typ: str) -> dict[str, Any]:
        """Check a JWS over an arbitrary JSON object (:meth:`sign_payload`): exactly ES256,
        this vault's ``kid``, the expected ``typ`` (so no other kind of token passes), no header
        pointing at another key. Returns the payload; :class:`TokenInvalid` otherwise."""
        self._check_header(token, typ)
        try:
            raw = jws.verify(token, self._public_key, algorithms=ALLOWED_ALGORITHMS)
            payload = json.loads(raw)
        except (JOSEError, ValueError):
            raise TokenInvalid("signature or payload not acceptable") from None
        if not isinstance(payload, dict):
            raise TokenInvalid("payload is not a JSON object")
        return payload

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}
