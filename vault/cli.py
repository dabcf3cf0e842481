"""The ``vault`` command line (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

# No rich tracebacks with local variables: they would print secrets and plaintext.
app = typer.Typer(
    help="Consent Vault: consent-aware customer data vault.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
clients_app = typer.Typer(help="App clients (OAuth2 client credentials).", no_args_is_help=True)
keys_app = typer.Typer(help="Key-encryption keys.", no_args_is_help=True)
policies_app = typer.Typer(help="Policy files.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(policies_app, name="policies")


def _register_domain_commands() -> None:
    from vault.audit.cli import app as audit_app
    from vault.consent.cli import app as consent_app
    from vault.dsr.cli import app as dsr_app
    from vault.dsr.cli import retention_app

    app.add_typer(consent_app, name="consent")
    app.add_typer(audit_app, name="audit")
    from vault.events.cli import app as webhooks_app
    from vault.events.cli import worker

    app.add_typer(webhooks_app, name="webhooks")
    app.command("worker")(worker)
    app.add_typer(dsr_app, name="dsr")
    app.add_typer(retention_app, name="retention")


_register_domain_commands()


def _settings():
    from vault.config import Settings

    return Settings()


def _runtime():
    from vault.runtime import Runtime

    return Runtime.build(_settings())


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    migrate: Annotated[
        bool, typer.Option(help="Apply pending migrations first (default on SQLite)")
    ] = True,
) -> None:
    """Run the HTTP API (applies pending migrations on the embedded default first)."""
    import uvicorn

    from vault.db import upgrade

    settings = _settings()
    url = settings.resolved_database_url
    if migrate and (url.startswith("sqlite") or settings.database_url is None):
        upgrade(url)
    _runtime()  # create the key file and validate keys and policies before forking workers
    uvicorn.run(
        "vault.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=4, max=100_000)] = 1000,
) -> None:
    """Fill the vault with fictional customers and print a demo client and ready curl commands."""
    from vault import demo as demo_mod
    from vault.db import upgrade

    settings = _settings()
    upgrade(settings.resolved_database_url)
    rt = _runtime()
    typer.echo(f"creating {customers} fictional customers with mixed consents ...")
    result = demo_mod.run(rt, customers=customers)
    base = settings.public_url.rstrip("/")
    typer.echo(
        f"""created {result.created} customers (existing demo customers were kept)

demo client (data:read consent:read consent:write customers:write;
purposes {", ".join(demo_mod.DEMO_PURPOSES)}):
  client_id:     {result.client_id}
  client_secret: {result.client_secret}

Start the server with 'vault serve', then in another shell:

TOKEN=$(curl -s -d grant_type=client_credentials -d client_id={result.client_id} \\
  -d client_secret={result.client_secret} {base}/v1/oauth/token \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# allowed: this customer granted "personalised_offers" (birth date comes as year only)
curl -s -H "Authorization: Bearer $TOKEN" \\
  '{base}/v1/customers/{result.allowed_customer}/data?purpose=personalised_offers'

# denied (403 consent_missing): this customer never granted it
curl -s -H "Authorization: Bearer $TOKEN" \\
  '{base}/v1/customers/{result.denied_customer}/data?purpose=personalised_offers'

Self-service page of the first demo customer (open it in a browser while 'vault serve'
runs; the link works once, within 15 minutes; run 'vault demo' again for a new one):
  {result.selfservice_url}
"""
    )


@app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(help="NDJSON file, one customer per line", exists=True)],
    chunk_size: Annotated[int, typer.Option(min=1, max=50_000)] = 2000,
    errors_file: Annotated[
        Path | None, typer.Option(help="write the per-line error report (NDJSON) here")
    ] = None,
) -> None:
    """Bulk-import customers (and initial consents); bad lines are reported, good lines kept."""
    from sqlmodel import Session

    from vault.customers import importer

    rt = _runtime()
    report = importer.ImportReport()
    total = sum(1 for _ in path.open("rb"))
    with path.open("rb") as fh, typer.progressbar(length=total, label="importing") as bar:
        for chunk in importer.chunks(fh, chunk_size):
            with Session(rt.engine, expire_on_commit=False) as session:
                importer.import_chunk(
                    session=session,
                    envelope=rt.envelope,
                    policy=rt.policy,
                    signer=rt.signer,
                    settings=rt.settings,
                    chunk=chunk,
                    report=report,
                    actor="cli",
                )
                session.commit()
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


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from vault.db import upgrade

    upgrade(_settings().resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from vault.db import downgrade

    downgrade(_settings().resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Display name of the app")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes")],
    purposes: Annotated[str, typer.Option(help="Space-separated purposes")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register an app client and print its id and secret (shown only once)."""
    from sqlmodel import Session

    from vault.auth import service
    from vault.errors import VaultError

    rt = _runtime()
    with Session(rt.engine, expire_on_commit=False) as session:
        try:
            client, secret = service.create_client(
                session=session,
                policy=rt.policy,
                name=name,
                scopes=scopes.split(),
                purposes=purposes.split(),
            )
        except VaultError as exc:
            raise _fail(f"error: {exc.detail}") from None
        session.commit()
    if as_json:
        typer.echo(json.dumps({"client_id": client.id, "client_secret": secret}))
    else:
        typer.echo(f"client_id:     {client.id}\nclient_secret: {secret}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new KEK primary in the local key file (old KEKs keep unwrapping)."""
    from vault.crypto.keys import KEY_FILE_NAME, LocalKeyFile

    settings = _settings()
    if settings.master_keys is not None:
        raise _fail(
            "keys come from VAULT_MASTER_KEYS: put a new key first in that list, restart, "
            "then run 'vault keys rewrap'"
        )
    keyfile = LocalKeyFile(settings.data_dir / KEY_FILE_NAME)
    if not keyfile.exists():
        raise _fail(f"no key file at {keyfile.path}")
    new_id = keyfile.rotate()
    typer.echo(f"new primary KEK: {new_id}; run 'vault keys rewrap' to re-wrap existing data keys")


@keys_app.command("rewrap")
def keys_rewrap(
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Re-wrap every customer's data key under the primary KEK, online and in batches."""
    from sqlmodel import Session

    from vault.customers import service

    rt = _runtime()
    total = 0
    while True:  # passes over the table until one finds nothing left under an old KEK
        # (a customer created by a server that had not yet seen the rotation is caught by the
        # next pass)
        in_pass, after = 0, None
        while True:
            with Session(rt.engine, expire_on_commit=False) as session:
                n, after = service.rewrap_batch(
                    session=session, envelope=rt.envelope, after=after, batch_size=batch_size
                )
                session.commit()
            in_pass += n
            if after is None:
                break
        total += in_pass
        if in_pass == 0:
            break
    typer.echo(f"re-wrapped {total} data keys under {rt.envelope.primary_kek_id}")


@policies_app.command("check")
def policies_check(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory")] = None,
) -> None:
    """Validate the policy files; exit 1 naming file, entry and problem."""
    from vault.policy import PolicyError, load_policy

    directory = directory or _settings().resolved_policies_dir
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {len(policy.attributes)} attributes, {len(policy.purposes)} purposes, "
        f"{len(policy.recipients)} recipients in {directory}"
    )


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write")] = Path("openapi/openapi.json"),
) -> None:
    """Write the OpenAPI document of the app."""
    from vault.openapi import generate

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(generate())
    typer.echo(f"wrote {output}")


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
