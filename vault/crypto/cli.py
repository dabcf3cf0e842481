"""``vault keys rotate``: a new primary KEK in the local key file (``vault keys rewrap``, which
re-wraps the customers' data keys, lives with the customers in :mod:`vault.customers.cli`)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Key-encryption keys.", no_args_is_help=True)


@app.command("rotate")
def keys_rotate() -> None:
    """Make a new KEK primary in the local key file (old KEKs keep unwrapping)."""
    from vault.config import Settings
    from vault.crypto.keys import KEY_FILE_NAME, LocalKeyFile

    settings = Settings()
    if settings.master_keys is not None:
        typer.echo(
            "keys come from VAULT_MASTER_KEYS: put a new key first in that list, restart, "
            "then run 'vault keys rewrap'",
            err=True,
        )
        raise typer.Exit(1)
    keyfile = LocalKeyFile(settings.data_dir / KEY_FILE_NAME)
    if not keyfile.exists():
        typer.echo(f"no key file at {keyfile.path}", err=True)
        raise typer.Exit(1)
    new_id = keyfile.rotate()
    typer.echo(f"new primary KEK: {new_id}; run 'vault keys rewrap' to re-wrap existing data keys")
