"""The app starts the audit sealer with its lifespan: events get chained without anyone asking."""

import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import auth_headers
from vault.app import create_app
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.runtime import Runtime


def test_lifespan_sealer_chains_events(settings, session):
    rt = Runtime.build(settings.model_copy(update={"audit_seal_interval": 0.1}))
    try:
        headers = auth_headers(session, rt, "customers:write")
        with TestClient(create_app(rt)) as client:
            r = client.post("/v1/customers", json={"attributes": {"city": "Bonn"}}, headers=headers)
            assert r.status_code == 201
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                unchained = session.execute(
                    select(AuditEvent.id).where(AuditEvent.seq.is_(None))
                ).all()
                session.rollback()
                if not unchained:
                    break
                time.sleep(0.1)
            assert unchained == []
        # stopping the app seals once more and signs a checkpoint over everything
        last = session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc())).first()
        cp = session.execute(
            select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq.desc())
        ).first()
        session.rollback()
        assert last is not None and cp is not None and cp[0] == last[0]
    finally:
        rt.engine.dispose()
