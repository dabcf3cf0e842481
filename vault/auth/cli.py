"""``vault clients ...``: register app clients (OAuth2 client credentials)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(help="App clients (OAuth2 client credentials).", no_args_is_help=True)


@app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Display name of the app")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes")],
    purposes: Annotated[str, typer.Option(help="Space-separated purposes")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register an app client and print its id and secret (shown only once)."""
    from vault.auth import service
    from vault.db import transaction
    from vault.errors import VaultError
    from vault.runtime import cli_runtime

    with cli_runtime() as rt:
        try:
            with transaction(rt.engine) as session:
                client, secret = service.create_client(
                    session=session,
                    policy=rt.policy,
                    name=name,
                    scopes=scopes.split(),
                    purposes=purposes.split(),
                )
        except VaultError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"client_id": client.id, "client_secret": secret}))
    else:
        typer.echo(f"client_id:     {client.id}\nclient_secret: {secret}")
