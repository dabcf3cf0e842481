"""``vault consent ...``: operator commands of the consent ledger."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Consent ledger.", no_args_is_help=True)

MAX_SHOWN = 50


@app.command("rebuild")
def rebuild(
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 if the projection differs")
    ] = False,
) -> None:
    """Replay the consent ledger and compare it with (or rewrite) the consent_state projection."""
    from vault.config import Settings
    from vault.consent import rebuild as consent_rebuild
    from vault.db import make_engine, transaction

    # Only the database is needed (no keys, no policy): the bare engine, not a Runtime.
    engine = make_engine(Settings().resolved_database_url)
    try:
        with transaction(engine) as session:
            report = consent_rebuild.rebuild(session=session, fix=not check)
    finally:
        engine.dispose()
    for diff in report.differences[:MAX_SHOWN]:
        typer.echo(f"differs: {diff.describe()}", err=check)
    if len(report.differences) > MAX_SHOWN:
        typer.echo(f"... and {len(report.differences) - MAX_SHOWN} more", err=check)
    summary = (
        f"{report.events} events, {report.states} projection rows, "
        f"{len(report.differences)} differences"
    )
    if check:
        if report.differences:
            typer.echo(f"error: projection differs from the ledger: {summary}", err=True)
            raise typer.Exit(1)
        typer.echo(f"ok: projection matches the ledger: {summary}")
    else:
        fixed = f"; rewrote {len(report.differences)} rows" if report.fixed else ""
        typer.echo(f"rebuilt: {summary}{fixed}")
