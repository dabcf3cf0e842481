"""``vault keys rotate``: a new primary KEK in the local key file or on the PKCS#11 token;
``vault keys split`` / ``recover``: SLIP-39 shares of the key file (recovery of the master key).
``vault keys rewrap`` (re-wraps the customers' data keys) and ``vault keys retire`` (needs to
know that no data key is left under a KEK) live with the customers in :mod:`vault.customers.cli`."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Key-encryption keys.", no_args_is_help=True)


@app.command("rotate")
def keys_rotate() -> None:
    """Make a new KEK primary (key file or token; old KEKs keep unwrapping until retired)."""
    from vault.config import Settings
    from vault.crypto.keys import KeyConfigError, rotate_kek
    from vault.crypto.pkcs11 import TokenError

    try:
        new_id = rotate_kek(Settings())
    except (KeyConfigError, TokenError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"new primary KEK: {new_id}; run 'vault keys rewrap' to re-wrap existing data keys")


# --- recovery of the master key: SLIP-39 shares (docs/keys.md) ------------------------------

_SHARES_VERSION = 1


def _refuse_other_providers(settings) -> None:
    if settings.master_keys is not None:
        typer.echo(
            "keys come from VAULT_MASTER_KEYS: escrow them where they are kept (secret manager); "
            "'vault keys split' only splits the local key file",
            err=True,
        )
        raise typer.Exit(1)
    # VAULT_KEY_PROVIDER=pkcs11: the KEKs never leave the token
    provider = str(getattr(settings, "key_provider", None) or "file").lower()
    if provider == "pkcs11":
        typer.echo(
            f"keys are held by the {provider} provider and never leave it: use its own backup "
            "and key-ceremony tools; 'vault keys split' only splits the local key file",
            err=True,
        )
        raise typer.Exit(1)


def _pack(keys) -> bytes:
    """The key file's secrets, canonically: version, index key, signing seed, then each KEK
    (primary first) as id length, id, key; a zero byte pads to the even length SLIP-39 needs."""
    out = bytearray([_SHARES_VERSION])
    out += keys.index_key + keys.signing_seed
    for kid, key in keys.keks.items():
        raw = kid.encode()
        if not 0 < len(raw) < 256:
            raise typer.BadParameter(f"KEK id {kid!r} cannot be packed")
        out += bytes([len(raw)]) + raw + key
    if len(out) % 2:
        out.append(0)
    return bytes(out)


def _unpack(secret: bytes) -> dict:
    import base64

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    if not secret or secret[0] != _SHARES_VERSION or len(secret) < 65:
        raise ValueError("the shares do not hold a Consent Vault key file")
    index_key, seed, pos = secret[1:33], secret[33:65], 65
    keks: dict[str, str] = {}
    while pos < len(secret) and secret[pos] != 0:
        n = secret[pos]
        kid = secret[pos + 1 : pos + 1 + n].decode()
        key = secret[pos + 1 + n : pos + 1 + n + 32]
        if len(key) != 32:
            raise ValueError("the shares hold a truncated key file")
        keks[kid] = b64(key)
        pos += 1 + n + 32
    if not keks:
        raise ValueError("the shares hold no KEK")
    return {
        "primary": next(iter(keks)),
        "keks": keks,
        "index_key": b64(index_key),
        "signing_seed": b64(seed),
    }


@app.command("split")
def keys_split(
    shares: Annotated[int, typer.Option("--shares", min=2, max=16, help="Shares to print")],
    threshold: Annotated[
        int, typer.Option("--threshold", min=2, max=16, help="Shares needed to recover")
    ],
) -> None:
    """Print N SLIP-39 shares of the local key file's secrets (KEKs, index key, signing seed),
    one per line; any K of them rebuild it with 'vault keys recover'. Split again after every
    rotate or retire."""
    import shamir_mnemonic

    from vault.config import Settings
    from vault.crypto.keys import KEY_FILE_NAME, KeyConfigError, LocalKeyFile

    if threshold > shares:
        raise typer.BadParameter("--threshold cannot exceed --shares")
    settings = Settings()
    _refuse_other_providers(settings)
    keyfile = LocalKeyFile(settings.data_dir / KEY_FILE_NAME)
    try:
        keys = keyfile.load()
    except KeyConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    (group,) = shamir_mnemonic.generate_mnemonics(1, [(threshold, shares)], _pack(keys))
    for line in group:
        typer.echo(line)
    typer.echo(
        f"{shares} shares of {keyfile.path} ({len(keys.keks)} KEK(s), {len(group[0].split())} "
        f"words each); any {threshold} rebuild it. Give each to a different keeper.",
        err=True,
    )


@app.command("recover")
def keys_recover(
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file")] = False,
) -> None:
    """Rebuild the local key file from K shares of 'vault keys split', read from stdin one
    per line."""
    import json
    import os
    import sys

    import shamir_mnemonic

    from vault.config import Settings
    from vault.crypto.keys import KEY_FILE_NAME, KeyConfigError, LocalKeyFile

    settings = Settings()
    _refuse_other_providers(settings)
    path = settings.data_dir / KEY_FILE_NAME
    if path.exists() and not force:
        typer.echo(f"{path} exists: refusing to overwrite it without --force", err=True)
        raise typer.Exit(1)
    lines = [" ".join(line.split()) for line in sys.stdin.read().splitlines() if line.strip()]
    try:
        doc = _unpack(shamir_mnemonic.combine_mnemonics(lines))
    except shamir_mnemonic.MnemonicError as exc:
        typer.echo(f"cannot recover the key file from {len(lines)} share(s): {exc}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:
        typer.echo(f"cannot recover the key file: {exc}", err=True)
        raise typer.Exit(1) from None
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".recover")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        keys = LocalKeyFile(path).load()
    except KeyConfigError as exc:  # pragma: no cover - _unpack builds a well-formed file
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"recovered {path}: {len(keys.keks)} KEK(s), primary {keys.primary_kek_id}")
