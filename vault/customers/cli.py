"""``vault import`` (bulk import of customers) and ``vault keys rewrap`` (re-wrap every customer's
data key under the primary KEK)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vault.provenance import Caller


def import_file(
    path: Annotated[Path, typer.Argument(help="NDJSON file, one customer per line", exists=True)],
    chunk_size: Annotated[int, typer.Option(min=1, max=50_000)] = 2000,
    errors_file: Annotated[
        Path | None, typer.Option(help="write the per-line error report (NDJSON) here")
    ] = None,
) -> None:
    """Bulk-import customers (and initial consents); bad lines are reported, good lines kept."""
    from vault.customers import importer
    from vault.db import transaction
    from vault.runtime import cli_runtime

    report = importer.ImportReport()
    total = sum(1 for _ in path.open("rb"))
    with (
        cli_runtime() as rt,
        path.open("rb") as fh,
        typer.progressbar(length=total, label="importing") as bar,
    ):
        for chunk in importer.chunks(fh, chunk_size):
            with transaction(rt.engine) as session:
                importer.import_chunk(
                    session=session,
                    envelope=rt.envelope,
                    policy=rt.policy,
                    signer=rt.signer,
                    settings=rt.settings,
                    chunk=chunk,
                    report=report,
                    by=Caller("cli"),
                )
            bar.update(chunk[-1][0] - bar.pos)  # lines read so far, blank ones included
    result = report.as_dict()
    if errors_file is not None:
        errors_file.write_text("".join(json.dumps(e) + "\n" for e in result["errors"]))
    typer.echo(
        f"received {result['received']}, created {result['created']} customers with "
        f"{result['consents']} consent events, rejected {result['rejected']}"
    )
    for e in result["errors"][:20]:
        typer.echo(f"  line {e['line']}: {e['error']}: {e['detail']}", err=True)
    if result["rejected"]:
        raise typer.Exit(1)


def keys_rewrap(
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Re-wrap every customer's data key (and every webhook signing secret) under the primary
    KEK, online and in batches."""
    from vault.customers import service
    from vault.db import transaction
    from vault.events import webhooks
    from vault.runtime import cli_runtime
    from vault.staff import accounts as staff_accounts

    total = 0
    with cli_runtime() as rt:
        while True:  # passes over the table until one finds nothing left under an old KEK
            # (a customer created by a server that had not yet seen the rotation is caught by
            # the next pass)
            in_pass, after = 0, None
            while True:
                with transaction(rt.engine) as session:
                    n, after = service.rewrap_batch(
                        session=session, envelope=rt.envelope, after=after, batch_size=batch_size
                    )
                in_pass += n
                if after is None:
                    break
            total += in_pass
            if in_pass == 0:
                break
        with transaction(rt.engine) as session:
            resealed = webhooks.reseal_secrets(session=session, envelope=rt.envelope)
            totp_resealed = staff_accounts.reseal_totp_secrets(
                session=session, envelope=rt.envelope
            )
        typer.echo(
            f"re-wrapped {total} data keys and {resealed} webhook secrets under "
            f"{rt.envelope.primary_kek_id}"
        )
        if totp_resealed:
            typer.echo(f"resealed {totp_resealed} staff TOTP secrets")


def keys_retire(
    kek_id: Annotated[str, typer.Argument(metavar="KID", help="the KEK to retire, e.g. k1")],
) -> None:
    """Delete a KEK from the key file (or destroy it on the token) once no data key is wrapped
    under it: copies of the database from before its epoch can then never be unwrapped."""
    from vault.crypto.keys import KeyConfigError, retire_kek
    from vault.crypto.pkcs11 import TokenError
    from vault.customers import service
    from vault.db import transaction
    from vault.events import webhooks
    from vault.runtime import cli_runtime
    from vault.staff import accounts as staff_accounts

    with cli_runtime() as rt:
        if kek_id == rt.envelope.primary_kek_id:
            typer.echo(f"{kek_id} is the primary KEK: rotate first, then rewrap", err=True)
            raise typer.Exit(1)
        with transaction(rt.engine) as session:
            left = service.deks_under(session=session, kek_id=kek_id)
            secrets_left = webhooks.secrets_under(session=session, kek_id=kek_id)
            totp_left = staff_accounts.totp_secrets_under(session=session, kek_id=kek_id)
        if left or secrets_left or totp_left:
            still = [f"{left} data keys are still wrapped under {kek_id}"] if left else []
            if secrets_left:
                still.append(f"{secrets_left} webhook secrets are still sealed under {kek_id}")
            if totp_left:
                still.append(f"{totp_left} staff TOTP secrets are still sealed under {kek_id}")
            typer.echo(f"{'; '.join(still)}: run 'vault keys rewrap' first", err=True)
            raise typer.Exit(1)
        try:
            retire_kek(rt.settings, kek_id)
        except (KeyConfigError, TokenError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
    typer.echo(f"retired KEK {kek_id}: data keys wrapped under it can no longer be unwrapped")
