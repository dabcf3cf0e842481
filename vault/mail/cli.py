"""``vault mail list|show|test|purge``: what the outbox holds, one mail as the customer gets it,
a test message through the configured transport, retention now."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer

app = typer.Typer(help="Mail to customers: the outbox and the mail drop.", no_args_is_help=True)


def _recipient(session: Any, runtime: Any, row: Any) -> str | None:
    from vault.errors import VaultError
    from vault.mail import outbox

    try:
        return outbox.open_message(session, runtime.envelope, row).to
    except VaultError:
        return None


@app.command("list")
def list_mails(
    status: Annotated[
        str | None,
        typer.Option(help="pending | retrying | sent | bounced | failed"),
    ] = None,
    customer: Annotated[UUID | None, typer.Option(help="only this customer's mails")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """The newest mails: id, time, state, attempts, template, recipient, last error."""
    from sqlmodel import Session

    from vault.db import reader
    from vault.mail import drop, outbox
    from vault.mail.models import MailStatus
    from vault.runtime import cli_runtime

    if status is not None and status not in {s.value for s in MailStatus}:
        typer.echo(f"error: unknown status {status!r}", err=True)
        raise typer.Exit(2)
    with cli_runtime() as runtime, Session(reader(runtime.engine)) as session:
        rows = outbox.list_mails(session, status=status, customer_id=customer, limit=limit)
        listed = [
            {
                "id": str(m.id),
                "created_at": m.created_at.isoformat(),
                "status": m.status,
                "attempts": m.attempts,
                "template": m.template,
                "language": m.language,
                "customer_id": str(m.customer_id),
                "to": _recipient(session, runtime, m),
                "last_error": m.last_error,
            }
            for m in rows
        ]
        session.rollback()
        smtp = runtime.settings.smtp
        where = repr(smtp) if smtp else f"the mail drop {drop.drop_dir(runtime.settings)}"
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    typer.echo(f"{len(listed)} mail(s), newest first; delivered to {where}")
    for m in listed:
        typer.echo(
            f"{m['id']}  {m['created_at'][:19]}  {m['status']:<8} {m['attempts']:>2}x  "
            f"{m['template']}.{m['language']}  {m['to'] or '(unreadable)'}"
            + (f"  [{m['last_error']}]" if m["last_error"] else "")
        )


@app.command("show")
def show(
    mail_id: Annotated[UUID, typer.Argument(help="the id 'vault mail list' prints")],
    html: Annotated[bool, typer.Option("--html", help="the HTML part instead of the text")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="the whole message (RFC 5322)")] = False,
) -> None:
    """One mail as the customer gets it: headers and the text part (links included)."""
    from sqlmodel import Session

    from vault.db import reader
    from vault.errors import VaultError
    from vault.mail import drop, outbox
    from vault.mail.models import MailMessage
    from vault.runtime import cli_runtime

    with cli_runtime() as runtime, Session(reader(runtime.engine)) as session:
        row = session.get(MailMessage, mail_id)
        if row is None:
            typer.echo(f"error: no mail {mail_id}", err=True)
            raise typer.Exit(1)
        try:
            message = outbox.open_message(session, runtime.envelope, row)
        except VaultError:
            typer.echo(f"error: mail {mail_id} cannot be read (its customer was erased)", err=True)
            raise typer.Exit(1) from None
        status, attempts, error = row.status, row.attempts, row.last_error
        session.rollback()
        composed = outbox.compose(message, runtime.settings)
        dropped = drop.path_of(drop.drop_dir(runtime.settings), mail_id)
    if raw:
        typer.echo(composed.as_string())
        return
    for name in ("From", "To", "Reply-To", "Subject", "Date", "Message-ID"):
        if composed[name]:
            typer.echo(f"{name}: {composed[name]}")
    state = f"{status}, {attempts} attempt(s)" + (f", last error {error}" if error else "")
    typer.echo(f"State: {state}")
    if dropped.exists():
        typer.echo(f"File: {dropped}")
    typer.echo("")
    typer.echo(message.html if html else message.text)


@app.command("test")
def test_message(
    to: Annotated[str, typer.Option(help="where to send the test message (not a customer)")],
    language: Annotated[str, typer.Option(help="de | en")] = "de",
) -> None:
    """Send a test message now through the configured transport (SMTP or the mail drop),
    without the outbox; exit 1 with the error code when it fails."""
    from uuid import uuid4

    from vault.config import Settings
    from vault.db import utcnow
    from vault.mail import delivery, outbox
    from vault.mail.errors import SendFailed
    from vault.mail.render import render

    settings = Settings()
    try:
        to = outbox.check_recipient(to)
    except ValueError as exc:
        typer.echo(f"error: --to: {exc}", err=True)
        raise typer.Exit(2) from None
    rendered = render("test_message", language, {"note": None})
    message = outbox.Message(
        id=uuid4(),
        customer_id=uuid4(),
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        created_at=utcnow(),
    )
    transport = delivery.transport_for(settings)
    try:
        transport.send(
            outbox.compose(message, settings),
            mail_id=message.id,
            sender=outbox.sender_address(settings),
            recipient=to,
        )
    except SendFailed as exc:
        typer.echo(f"failed: {exc.code}", err=True)
        raise typer.Exit(1) from None
    finally:
        transport.close()
    typer.echo(f"sent {message.id} via {transport!r}")


@app.command("purge")
def purge() -> None:
    """Delete sent, bounced and failed mails older than VAULT_MAIL_RETENTION_DAYS (and their
    mail drop files) now; the deliverers also do it every 10 minutes."""
    from vault.mail.delivery import Deliverer
    from vault.runtime import cli_runtime

    with cli_runtime() as runtime:
        n = Deliverer(runtime).purge()
    typer.echo(json.dumps({"purged": n}))
