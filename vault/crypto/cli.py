"""``vault keys rotate``: a new primary KEK in the local key file or on the PKCS#11 token.
``vault keys rewrap`` (re-wraps the customers' data keys) and ``vault keys retire`` (needs to
know that no data key is left under a KEK) live with the customers in :mod:`vault.customers.cli`."""

from __future__ import annotations

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
