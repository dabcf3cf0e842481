"""``vault clients ...``: register app clients (OAuth2 client credentials) and run their
lifecycle. The command line is the operator's door: only here can ``admin`` and the scopes that
reach customer data be granted (docs/security.md, "Separation of duties")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(help="App clients (OAuth2 client credentials).", no_args_is_help=True)

T = TypeVar("T")
ClientId = Annotated[str, typer.Argument(help="The client id (cv_…)")]


def _in_transaction(fn: Callable[..., T]) -> T:
    """Run ``fn(session=..., runtime=...)`` in one committed transaction; domain errors exit 1."""
    from vault.db import transaction
    from vault.errors import VaultError
    from vault.runtime import cli_runtime

    with cli_runtime() as runtime:
        try:
            with transaction(runtime.engine) as session:
                return fn(session=session, runtime=runtime)
        except VaultError as exc:
            typer.echo(f"error: {exc.code}: {exc.detail}", err=True)
            raise typer.Exit(1) from None


def _echo(public: dict[str, Any]) -> None:
    from vault.auth.models import ClientPublic

    typer.echo(json.dumps(ClientPublic(**public).model_dump(mode="json"), indent=2))


def _echo_secret(client_id: str, secret: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
    else:
        typer.echo(f"client_id:     {client_id}\nclient_secret: {secret}")


@app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Display name of the app")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes")],
    purposes: Annotated[str, typer.Option(help="Space-separated purposes")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register an app client and print its id and secret (shown only once)."""
    from vault.auth import service

    def run(*, session: Any, runtime: Any) -> tuple[Any, str]:
        return service.create_client(
            session=session,
            policy=runtime.policy,
            name=name,
            scopes=scopes.split(),
            purposes=purposes.split(),
        )

    client, secret = _in_transaction(run)
    _echo_secret(client.id, secret, as_json)


@app.command("list")
def clients_list(
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Deleted clients too")
    ] = False,
) -> None:
    """Clients (JSON), oldest first: id, name, scopes, purposes, status, dates. No secrets."""
    from vault.auth import service

    def run(*, session: Any, runtime: Any) -> list[dict]:
        rows = service.list_clients(session=session, include_deleted=include_deleted)
        return [service.to_public(c) for c in rows]

    from vault.auth.models import ClientList

    listed = ClientList(clients=_in_transaction(run))
    typer.echo(json.dumps(listed.model_dump(mode="json")["clients"], indent=2))


def _print_client(action: str, client_id: str) -> None:
    """Run ``vault.auth.service.<action>`` on one client in a transaction; print it (JSON)."""
    from vault.auth import service

    change = getattr(service, action)
    _echo(
        _in_transaction(
            lambda *, session, runtime: service.to_public(
                change(session=session, client_id=client_id)
            )
        )
    )


@app.command("show")
def clients_show(client_id: ClientId) -> None:
    """One client (JSON), deleted ones included."""
    _print_client("get_client", client_id)


@app.command("disable")
def clients_disable(client_id: ClientId) -> None:
    """Stop a client: its secret and every live token are refused from the next request on."""
    _print_client("disable_client", client_id)


@app.command("enable")
def clients_enable(client_id: ClientId) -> None:
    """Let a disabled client in again."""
    _print_client("enable_client", client_id)


@app.command("rotate-secret")
def clients_rotate_secret(
    client_id: ClientId,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """A new secret, printed once; the old secret and its live tokens stop at once."""
    from vault.auth import service

    client, secret = _in_transaction(
        lambda *, session, runtime: service.rotate_secret(session=session, client_id=client_id)
    )
    _echo_secret(client.id, secret, as_json)


@app.command("delete")
def clients_delete(
    client_id: ClientId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a client for good (its row stays, without a secret, for the audit history)."""
    from vault.auth import service

    if not yes:
        typer.confirm(f"Delete client {client_id}? It cannot be enabled again", abort=True)
    _echo(
        _in_transaction(
            lambda *, session, runtime: service.to_public(
                service.delete_client(session=session, client_id=client_id)
            )
        )
    )
