"""Envelope encryption, blind indexes and signing keys.

Design (small, boring, pyca/cryptography only):

* KEKs (key-encryption keys) are versioned 256-bit keys from a :class:`KeyProvider`. The first key
  is primary and wraps new DEKs; every key unwraps. ``vault keys rotate`` adds a new primary,
  ``vault keys rewrap`` re-wraps every DEK under it.
* Each customer has one random 256-bit DEK, stored wrapped with AES-256-GCM under a KEK; the
  associated data names the customer and the KEK id. Erasure deletes the wrapped DEK: every
  ciphertext of that customer, including copies in backups, becomes noise (crypto-shredding).
* Each value is AES-256-GCM under the customer's DEK with a fresh 96-bit nonce, a version byte in
  front and associated data ``(customer id, attribute)``: a ciphertext moved to another row fails.
* Lookups use an HMAC-SHA256 blind index under a separate index key, over a normalised value.
* Every failure to unwrap or decrypt raises :class:`vault.errors.DecryptionError` and says nothing
  about why. Nothing secret has a useful ``repr``.
"""

from vault.crypto.envelope import Envelope
from vault.crypto.keys import KeyMaterial, load_key_material

__all__ = ["Envelope", "KeyMaterial", "load_key_material"]
