"""``vault webhooks ...`` (subscriptions) and ``vault worker`` (delivery)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer

from vault.provenance import Caller

app = typer.Typer(help="Webhook subscriptions.", no_args_is_help=True)

T = TypeVar("T")
CLI_ACTOR = "cli"


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


def _echo(model: Any) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json"), indent=2))


@app.command("list")
def list_webhooks() -> None:
    """Subscriptions (JSON) with their delivery counts per state."""
    from sqlalchemy import func, select

    from vault.events import webhooks
    from vault.events.models import WebhookDelivery

    def run(*, session: Any, runtime: Any) -> list[dict]:
        counts: dict[UUID, dict[str, int]] = {}
        for wid, state, n in session.execute(
            select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count()).group_by(
                WebhookDelivery.webhook_id, WebhookDelivery.status
            )
        ):
            counts.setdefault(wid, {})[state] = n
        return [
            {**webhooks.public(w).model_dump(mode="json"), "deliveries": counts.get(w.id, {})}
            for w in webhooks.list_webhooks(session=session)
        ]

    typer.echo(json.dumps(_in_transaction(run), indent=2))


@app.command("create")
def create(
    url: Annotated[str, typer.Option(help="http(s) URL of the receiver")],
    events: Annotated[
        str, typer.Option(help='event types, e.g. "consent.withdrawn customer.erased"')
    ],
) -> None:
    """Subscribe a URL; prints the id and the signing secret (shown only this once)."""
    from vault.events import webhooks

    def run(*, session: Any, runtime: Any) -> Any:
        webhook, secret = webhooks.create_webhook(
            session=session,
            envelope=runtime.envelope,
            settings=runtime.settings,
            url=url,
            events=events.replace(",", " ").split(),
            by=Caller(CLI_ACTOR),
            subscriber=None,  # the operator
        )
        return webhooks.with_secret(webhook, secret)

    _echo(_in_transaction(run))


@app.command("disable")
def disable(webhook_id: UUID) -> None:
    """Stop a subscription."""
    from vault.events import webhooks

    def run(*, session: Any, runtime: Any) -> Any:
        webhook = webhooks.disable_webhook(
            session=session, webhook_id=webhook_id, by=Caller(CLI_ACTOR)
        )
        return webhooks.public(webhook)

    _echo(_in_transaction(run))


@app.command("rotate-secret")
def rotate_secret(webhook_id: UUID) -> None:
    """New signing secret (printed once); the old one keeps signing for 24 hours."""
    from vault.events import webhooks

    def run(*, session: Any, runtime: Any) -> Any:
        webhook, secret = webhooks.rotate_secret(
            session=session, envelope=runtime.envelope, webhook_id=webhook_id, by=Caller(CLI_ACTOR)
        )
        return webhooks.with_secret(webhook, secret)

    _echo(_in_transaction(run))


@app.command("redeliver")
def redeliver(
    webhook_id: UUID,
    event_id: Annotated[
        UUID | None, typer.Option(help="only this event (else every dead-lettered one)")
    ] = None,
) -> None:
    """Queue dead-lettered deliveries (or one event) again."""
    from vault.events import webhooks

    def run(*, session: Any, runtime: Any) -> int:
        return webhooks.redeliver(
            session=session, webhook_id=webhook_id, event_id=event_id, by=Caller(CLI_ACTOR)
        )

    typer.echo(json.dumps({"webhook_id": str(webhook_id), "requeued": _in_transaction(run)}))


def worker(
    once: Annotated[bool, typer.Option("--once", help="one round, then exit")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="parallel requests")] = 8,
    batch_size: Annotated[int, typer.Option(min=1, max=10000, help="deliveries per claim")] = 64,
) -> None:
    """Deliver outbox events to the webhooks (signed, retried, in order per customer).

    Run as many workers as you like; SIGTERM or Ctrl-C finishes the current batch and exits."""
    import logging

    from vault.events.worker import Worker
    from vault.runtime import cli_runtime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # httpx logs every request with its URL at INFO; a URL may carry a receiver's token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with (
        cli_runtime() as runtime,
        Worker(runtime, concurrency=concurrency, batch_size=batch_size) as w,
    ):
        if once:
            w.run(max_rounds=1)
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: w.stop())
        typer.echo(f"worker {w.worker_id} started", err=True)
        w.run()
        stats = ", ".join(f"{w.stats.get(k, 0)} {k}" for k in ("delivered", "failed", "dead"))
        typer.echo(f"worker {w.worker_id} stopped: {stats}", err=True)
