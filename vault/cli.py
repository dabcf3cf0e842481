"""The ``vault`` command line (typer): assembles every domain's commands, and runs the server,
the demo, the OpenAPI export and migrations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vault.audit.cli import app as audit_app
from vault.auth.cli import app as clients_app
from vault.consent.cli import app as consent_app
from vault.crypto.cli import app as keys_app
from vault.customers.cli import import_file, keys_retire, keys_rewrap
from vault.dsr.cli import app as dsr_app
from vault.dsr.cli import retention_app
from vault.events.cli import app as webhooks_app
from vault.events.cli import worker
from vault.mail.cli import app as mail_app
from vault.policy.cli import app as policies_app
from vault.staff.cli import app as staff_app

# No rich tracebacks with local variables: they would print secrets and plaintext.
app = typer.Typer(
    help="Consent Vault: consent-aware customer data vault.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
keys_app.command("rewrap")(keys_rewrap)
keys_app.command("retire")(keys_retire)
app.add_typer(policies_app, name="policies")
app.add_typer(consent_app, name="consent")
app.add_typer(audit_app, name="audit")
app.add_typer(webhooks_app, name="webhooks")
app.command("worker")(worker)
app.add_typer(mail_app, name="mail")
app.add_typer(dsr_app, name="dsr")
app.add_typer(retention_app, name="retention")
app.add_typer(staff_app, name="staff")
app.command("import")(import_file)
erasure_app = typer.Typer(help="Erasure certificates.", no_args_is_help=True)
app.add_typer(erasure_app, name="erasure")


def _settings():
    from vault.config import Settings

    return Settings()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    migrate: Annotated[
        bool, typer.Option(help="Apply pending migrations first (default on SQLite)")
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated proxy addresses or networks whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed (default: VAULT_FORWARDED_ALLOW_IPS, else none)"
        ),
    ] = None,
) -> None:
    """Run the HTTP API (applies pending migrations on the embedded default first)."""
    import os

    import uvicorn

    from vault.datadir import UnsafePermissions
    from vault.db import upgrade
    from vault.runtime import cli_runtime

    if forwarded_allow_ips is not None:
        # the app reads it from the environment, in every worker process
        os.environ["VAULT_FORWARDED_ALLOW_IPS"] = forwarded_allow_ips
    settings = _settings()
    url = settings.resolved_database_url
    if migrate and (url.startswith("sqlite") or settings.database_url is None):
        upgrade(url)
    try:
        with cli_runtime(settings):
            pass  # building it creates the key file, validates keys, policies and permissions
    except UnsafePermissions as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        "vault.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        # the app applies the proxy headers itself, from VAULT_FORWARDED_ALLOW_IPS only;
        # uvicorn's own default would trust them from 127.0.0.1 (or $FORWARDED_ALLOW_IPS)
        proxy_headers=False,
    )


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=4, max=100_000)] = 1000,
) -> None:
    """Fill the vault with fictional customers and print a demo client and ready curl commands."""
    from vault import demo as demo_mod
    from vault.db import upgrade
    from vault.runtime import cli_runtime

    settings = _settings()
    upgrade(settings.resolved_database_url)
    typer.echo(f"creating {customers} fictional customers with mixed consents ...")
    with cli_runtime(settings) as rt:
        result = demo_mod.run(rt, customers=customers)
    base = settings.public_url.rstrip("/")
    typer.echo(
        f"""created {result.created} customers (existing demo customers were kept)

demo client ({" ".join(demo_mod.DEMO_SCOPES)};
purposes {", ".join(demo_mod.DEMO_PURPOSES)}; the same client on every run, a new secret each time):
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


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write")] = Path("openapi/openapi.json"),
) -> None:
    """Write the OpenAPI document of the app."""
    from vault.openapi import generate

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(generate())
    typer.echo(f"wrote {output}")


@app.command("backup")
def backup_cmd(
    path: Annotated[Path, typer.Argument(help="A new or empty directory")],
    keys_only: Annotated[
        bool,
        typer.Option("--keys-only", help="Only the key file and the manifest (PostgreSQL)"),
    ] = False,
) -> None:
    """Snapshot the database (SQLite backup API, online; PostgreSQL: pg_dump if on PATH) and
    the key file into PATH, with a manifest (docs/keys.md, "Backups")."""
    from vault.backup import BackupError, backup

    try:
        manifest = backup(_settings(), path, keys_only=keys_only)
    except BackupError as exc:
        typer.echo(f"backup refused: {exc}", err=True)
        raise typer.Exit(1) from None
    files = ", ".join(manifest["files"]) or "none"
    typer.echo(
        f"backup in {path}: {files}; keys: {manifest['keys']}; revision "
        f"{manifest.get('alembic_revision')}; erasure journal at line "
        f"{manifest['erasure_journal']['lines']}"
    )


@app.command("restore")
def restore_cmd(
    path: Annotated[Path, typer.Argument(help="A directory written by 'vault backup'")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a non-empty database or a different key file")
    ] = False,
    journal: Annotated[
        list[Path] | None,
        typer.Option(
            "--journal",
            help="More erasure journals to replay (e.g. the lost data directory's copy)",
        ),
    ] = None,
) -> None:
    """Restore a backup into the configured database and data directory (the server stopped),
    then re-apply every erasure of the erasure journal: no erased customer comes back."""
    from vault.backup import BackupError, restore

    try:
        report = restore(_settings(), path, force=force, journals=journal or [])
    except (BackupError, ValueError) as exc:
        typer.echo(f"restore refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"restored {report.database}; keys {report.keys}; {report.journal_entries} journal "
        f"entries replayed, {len(report.reerased)} customer(s) erased again"
    )


@erasure_app.command("verify")
def erasure_verify(
    cert: Annotated[str, typer.Argument(help="The compact JWS, or a file holding it")],
) -> None:
    """Check an erasure certificate against this vault's signing key and print its payload
    as JSON; exit 1 when it is not valid."""
    import json

    from vault.crypto.keys import KeyConfigError, load_key_material
    from vault.crypto.signing import Signer, TokenInvalid
    from vault.dsr.erasure import verify_certificate

    token = cert.strip()
    if token.count(".") != 2 and Path(token).is_file():
        token = Path(token).read_text().strip()
    settings = _settings()
    try:
        signer = Signer(load_key_material(settings, create=False))
    except KeyConfigError as exc:
        typer.echo(f"cannot load the vault's keys: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        payload = verify_certificate(signer, token)
    except TokenInvalid as exc:
        typer.echo(f"invalid erasure certificate: {exc}", err=True)
        raise typer.Exit(1) from None
    if payload.get("iss") != settings.issuer:
        typer.echo(f"invalid erasure certificate: issued by {payload.get('iss')!r}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(payload, indent=2))


def main() -> None:
    """The console script. A configuration error is one clear line per problem (the variable
    and what is wrong, never its value), exit status 2, instead of a traceback."""
    from pydantic import ValidationError

    from vault.crypto.keys import KeyConfigError
    from vault.db import SchemaNotCurrent
    from vault.policy import PolicyError

    try:
        app()
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            where = "_".join(str(part) for part in err["loc"]).upper()
            name = f"VAULT_{where}: " if where else ""
            message = err["msg"].removeprefix("Value error, ")
            typer.echo(f"configuration error: {name}{message}", err=True)
        sys.exit(2)
    except KeyConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    except SchemaNotCurrent as exc:
        typer.echo(f"database error: {exc}", err=True)
        sys.exit(2)
    except PolicyError as exc:  # vault serve, demo, …: the same lines as 'vault policies check'
        for problem in exc.problems:
            typer.echo(f"policy error: {problem}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
