"""Operations endpoints: liveness, Prometheus metrics and the published signing keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from vault import __version__
from vault.audit.verify import public_jwk
from vault.events.metrics import DeliveryCollector
from vault.mail.metrics import MailCollector
from vault.runtime import RuntimeDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", operation_id="healthz")
def healthz(runtime: RuntimeDep) -> dict[str, str]:
    """Liveness and database reachability."""
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


@router.get("/metrics", operation_id="metrics", response_class=PlainTextResponse)
def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    """Prometheus metrics (webhook deliveries and mails by state), read from the database."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(runtime.engine))
    registry.register(MailCollector(runtime.engine))
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json", operation_id="jwks")
def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    """Public keys that verify access tokens, consent receipts and audit checkpoints."""
    return {"keys": [*runtime.signer.jwks()["keys"], public_jwk(runtime.keys)]}
