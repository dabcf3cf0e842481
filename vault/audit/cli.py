"""``vault audit ...``: seal, verify and purge the tamper-evident audit log."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vault.provenance import Caller

app = typer.Typer(help="Tamper-evident audit log.", no_args_is_help=True)


@app.command("seal")
def seal_cmd() -> None:
    """Chain every pending event and sign a checkpoint over the head."""
    from vault.audit.seal import seal_pending
    from vault.runtime import cli_runtime

    with cli_runtime() as rt:
        result = seal_pending(engine=rt.engine, keys=rt.keys, checkpoint=True)
    typer.echo(
        f"sealed {result.sealed} events; head seq {result.head_seq}; "
        f"checkpoint {result.checkpoint_seq if result.checkpoint_seq is not None else 'unchanged'}"
    )


@app.command("verify")
def verify_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    seal: Annotated[
        bool, typer.Option(help="Chain pending events first (--no-seal: strictly read-only)")
    ] = True,
) -> None:
    """Recompute the hash chain and check every signed checkpoint; exit 1 when tampered."""
    from vault.audit.actions import AuditAction
    from vault.audit.record import record
    from vault.audit.seal import seal_pending
    from vault.audit.verify import verify_engine
    from vault.db import transaction
    from vault.runtime import cli_runtime

    with cli_runtime() as rt:
        if seal:
            with transaction(rt.engine) as session:
                record(
                    session=session,
                    by=Caller("cli"),
                    action=AuditAction.AUDIT_READ,
                    details={"format": "verify"},
                )
            seal_pending(engine=rt.engine, keys=rt.keys, checkpoint=True)
        result = verify_engine(engine=rt.engine, keys=rt.keys)
    if as_json:
        typer.echo(json.dumps(result.model_dump()))
    elif result.ok:
        typer.echo(f"ok: {result.checked} events verified")
    else:
        typer.echo(
            f"TAMPERED: first invalid seq {result.first_invalid_seq} "
            f"({result.checked} events verified before it)"
        )
    raise typer.Exit(0 if result.ok else 1)


@app.command("purge")
def purge_cmd(
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, help="Override VAULT_AUDIT_RETENTION_DAYS"),
    ] = None,
) -> None:
    """Delete events older than the retention period, up to a signed checkpoint that anchors
    the rest of the chain."""
    from vault.audit.purge import purge
    from vault.audit.seal import seal_pending
    from vault.db import transaction
    from vault.runtime import cli_runtime

    with cli_runtime() as rt:
        days = retention_days or rt.settings.audit_retention_days
        seal_pending(engine=rt.engine, keys=rt.keys, checkpoint=True)
        with transaction(rt.engine) as session:
            result = purge(session=session, retention_days=days)
        seal_pending(engine=rt.engine, keys=rt.keys, checkpoint=True)
    if result.up_to_seq is None:
        typer.echo(f"nothing to purge (retention {days} days)")
    else:
        typer.echo(
            f"purged {result.deleted} events up to seq {result.up_to_seq} "
            f"(retention {days} days); checkpoint {result.up_to_seq} anchors the chain"
        )
