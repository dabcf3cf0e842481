"""``vault dsr ...`` and ``vault retention run``: operator commands of data-subject rights."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

app = typer.Typer(help="Data-subject requests (GDPR Arts. 12 to 21).", no_args_is_help=True)
retention_app = typer.Typer(help="Retention: delete what is past its keeping period.")


@app.command("list")
def list_cmd(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open requests past due")] = False,
    status: Annotated[str | None, typer.Option(help="open | completed | rejected")] = None,
    kind: Annotated[str | None, typer.Option(help="access, erasure, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
) -> None:
    """List tracked requests, earliest deadline first; exit 1 with --overdue if any is."""
    from vault.db import reader, transaction, utcnow
    from vault.dsr import requests
    from vault.dsr.notes import NoteReader
    from vault.runtime import cli_runtime

    now = utcnow()
    with cli_runtime() as rt, transaction(reader(rt.engine)) as session:
        rows = requests.list_requests(
            session=session, overdue=overdue, status=status, kind=kind, now=now, limit=limit
        )
        notes = NoteReader(session, rt.envelope)
        items = [requests.request_public(r, notes, now) for r in rows]
    for r, item in zip(rows, items, strict=True):
        if as_json:
            typer.echo(json.dumps(item, default=str))
        else:
            late = "  OVERDUE" if item["overdue"] else ""
            ext = f" (+{r.extension_months} mo)" if r.extension_months else ""
            typer.echo(
                f"{r.id}  {r.kind:<13} {r.status:<9} customer {r.customer_id}  "
                f"received {r.received_at:%Y-%m-%d}  due {r.due_at:%Y-%m-%d}{ext}{late}"
            )
    if not as_json:
        typer.echo(f"{len(rows)} request(s){' overdue' if overdue else ''}", err=True)
    if overdue and rows:
        raise typer.Exit(1)


@app.command("erase-many")
def erase_many_cmd(
    ids: Annotated[Path, typer.Argument(help="File of customer ids, one per line ('-': stdin)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Erase many customers in one transaction (e.g. accounts closed long ago). Unknown, already
    erased and legally held customers are skipped and counted; exit 1 if the deleted bytes could
    not yet be removed from the database files (the erasure itself is committed)."""
    from vault.db import transaction
    from vault.dsr import erasure
    from vault.dsr.errors import ErasureIncomplete
    from vault.provenance import CLI
    from vault.runtime import cli_runtime

    text = sys.stdin.read() if str(ids) == "-" else ids.read_text()
    wanted: list[UUID] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                wanted.append(UUID(line.strip()))
            except ValueError:
                raise typer.BadParameter(f"line {n} is not a customer id") from None
    incomplete = None
    with cli_runtime() as rt:
        try:
            with transaction(rt.engine) as session:
                result = erasure.erase_many(
                    session=session,
                    customer_ids=wanted,
                    by=CLI,
                    notary=erasure.Notary.of(rt),
                )
        except ErasureIncomplete as exc:
            incomplete = exc
    counts = {
        "erased": len(result.erased),
        "not_found": len(result.not_found),
        "already_erased": len(result.already_erased),
        "legal_hold": len(result.legal_hold),
    }
    if as_json:
        typer.echo(json.dumps({**counts, "legal_hold_ids": [str(i) for i in result.legal_hold]}))
    else:
        typer.echo(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    if incomplete is not None:
        typer.echo(f"{incomplete.code}: {incomplete.detail}", err=True)
        raise typer.Exit(1)


@retention_app.command("run")
def run_cmd(
    now: Annotated[
        str | None, typer.Option(help="ISO 8601 instant with zone to judge retention at")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    idempotency_days: Annotated[
        int, typer.Option(min=1, help="keep Idempotency-Key answers this long")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Delete values past their retention and expired consent working copies (idempotent,
    batched short transactions: safe while the server runs)."""
    from vault.dsr import retention
    from vault.runtime import cli_runtime

    at = None
    if now is not None:
        try:
            at = datetime.fromisoformat(now)
        except ValueError:
            raise typer.BadParameter("--now must be an ISO 8601 instant") from None
        if at.tzinfo is None:
            raise typer.BadParameter("--now needs a time zone, e.g. 2030-01-01T00:00:00+00:00")
    with cli_runtime() as rt:
        report = retention.run(
            engine=rt.engine,
            policy=rt.policy,
            now=at,
            batch_size=batch_size,
            idempotency_days=idempotency_days,
        )
    summary = report.public()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    by = ", ".join(f"{k} {v}" for k, v in summary["by_attribute"].items()) or "none"
    typer.echo(
        f"retention run at {summary['now']}: deleted {summary['values_deleted']} values of "
        f"{summary['customers_affected']} customers ({by}); "
        f"{summary['confirmations_deleted']} expired confirmation tokens; "
        f"{summary['idempotency_deleted']} idempotency answers"
    )
