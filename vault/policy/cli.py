"""``vault policies check``: validate the policy files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Policy files.", no_args_is_help=True)


@app.command("check")
def policies_check(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory")] = None,
) -> None:
    """Validate the policy files; exit 1 naming file, entry and problem."""
    from vault.config import Settings
    from vault.policy import PolicyError, load_policy

    directory = directory or Settings().resolved_policies_dir
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {len(policy.attributes)} attributes, {len(policy.purposes)} purposes, "
        f"{len(policy.recipients)} recipients, {len(policy.stores)} stores, "
        f"{len(policy.scripts)} scripts in {directory}"
    )
