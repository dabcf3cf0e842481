"""``vault staff ...``: onboard and offboard staff of the console at /staff (docs/staff.md).

Passwords are read from stdin (never an argument: it would stay in the shell history and the
process list). ``create`` and ``reset`` print the TOTP provisioning URI (``otpauth://``) once;
the staff member scans it into an authenticator app. Nothing prints a hash or a secret later.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(help="Staff console accounts (/staff).", no_args_is_help=True)

T = TypeVar("T")
Name = Annotated[str, typer.Argument(help="The staff member's sign-in name")]


def _in_transaction(fn: Callable[..., T]) -> T:
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


def _password() -> str:
    """The first line of stdin (a terminal is asked, without echo)."""
    if sys.stdin.isatty():
        first = typer.prompt("Password", hide_input=True)
        again = typer.prompt("Repeat", hide_input=True)
        if first != again:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(1)
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _echo_provisioned(provisioned: Any, as_json: bool) -> None:
    from vault.staff import accounts

    public = accounts.to_public(provisioned.account)
    if as_json:
        typer.echo(json.dumps({**public, "totp_uri": provisioned.totp_uri}))
    else:
        typer.echo(f"staff id: {public['id']}\nname:     {public['name']}")
        typer.echo(f"role:     {public['role']}")
        typer.echo("TOTP (shown once; scan it into an authenticator app):")
        typer.echo(provisioned.totp_uri)


@app.command("create")
def staff_create(
    name: Annotated[str, typer.Option(help="Sign-in name (lower case: letters, digits . _ -)")],
    role: Annotated[str, typer.Option(help="store, call_center, privacy_officer or auditor")],
    store: Annotated[str | None, typer.Option(help="The store (required for role store)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a staff account: password from stdin; prints the TOTP provisioning URI once."""
    from vault.staff import accounts

    password = _password()

    def run(*, session: Any, runtime: Any) -> Any:
        return accounts.create_account(
            session=session,
            envelope=runtime.envelope,
            name=name,
            role=role,
            store=store,
            password=password,
        )

    _echo_provisioned(_in_transaction(run), as_json)


@app.command("list")
def staff_list() -> None:
    """Staff accounts (JSON), oldest first: id, name, role, store, status, dates. No secrets."""
    from vault.staff import accounts

    def run(*, session: Any, runtime: Any) -> list[dict]:
        return [accounts.to_public(a) for a in accounts.list_accounts(session)]

    typer.echo(json.dumps(_in_transaction(run), indent=2))


@app.command("disable")
def staff_disable(name: Name) -> None:
    """Offboard: the account can no longer sign in; its sessions end now."""
    from vault.staff import accounts

    def run(*, session: Any, runtime: Any) -> dict:
        return accounts.to_public(accounts.disable_account(session=session, name=name))

    typer.echo(json.dumps(_in_transaction(run), indent=2))


@app.command("reset")
def staff_reset(
    name: Name,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """New password (from stdin) and new TOTP secret (its URI printed once); the old ones stop
    working, the account's sessions end and a lockout is lifted."""
    from vault.staff import accounts

    password = _password()

    def run(*, session: Any, runtime: Any) -> Any:
        return accounts.reset_account(
            session=session, envelope=runtime.envelope, name=name, password=password
        )

    _echo_provisioned(_in_transaction(run), as_json)
