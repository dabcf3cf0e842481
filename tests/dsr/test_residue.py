"""Erasure that stays erased on disk (SQLite): once an erasure has answered, no byte it removed
(wrapped data key, ciphertexts, blind-index digests, token hashes, idempotent answers, the
sealed notes of its requests) is left in any file of the data directory, read as raw bytes.
Through every door: the API, /me, the batch (CLI), and retention; also after a large import
grew the WAL; and a reader that holds the WAL makes the erasure answer 503
``erasure_incomplete`` until the next checkpoint."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlmodel import Session
from typer.testing import CliRunner

from tests.factories import auth_headers, create_customer
from tests.selfservice.helpers import csrf, issue_link, sign_in
from vault import db
from vault.access import service as access_service
from vault.app import create_app
from vault.cli import app as cli
from vault.config import Settings
from vault.consent.models import ConsentConfirmation, ConsentIdempotency
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.db import reader, upgrade, utcnow
from vault.dsr import retention
from vault.dsr.models import DataSubjectRequest
from vault.runtime import Runtime
from vault.selfservice.models import SelfserviceSession

NOTE = "Rückruf bei Erika Mustermann, Az. 17/26"  # a request note about the customer


@dataclass
class Disk:
    runtime: Runtime
    client: TestClient
    data_dir: Path

    @property
    def engine(self):
        return self.runtime.engine

    def session(self) -> Session:
        """For looking only (deferred on SQLite: it takes no write lock)."""
        return Session(reader(self.engine), expire_on_commit=False)

    def writer(self) -> Session:
        """For arranging state: a deferred session that reads, then writes, fails on SQLite
        when another writer (the in-process mail deliverer) committed in between."""
        return Session(self.engine, expire_on_commit=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """The real app on a SQLite file in its own data directory (as ``vault serve`` runs)."""
    data_dir = tmp_path / "data"
    settings = Settings(
        data_dir=data_dir,
        public_url="http://testserver",
        audit_seal_interval=0,
        _env_file=None,
    )
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield Disk(runtime, client, data_dir)
    runtime.engine.dispose()


def _headers(disk: Disk, *scopes: str, purposes: tuple[str, ...] = ()) -> dict[str, str]:
    with disk.writer() as s:
        return auth_headers(s, disk.runtime, *scopes, purposes=purposes)


def _customer(disk: Disk, n: int, **extra) -> UUID:
    with disk.writer() as s:
        c = create_customer(
            s,
            disk.runtime,
            email=f"kundin{n}@example.de",
            phone=f"+49 30 55501{n:02d}",
            first_name="Erika",
            last_name=f"Mustermann{n}",
            birth_date="1984-05-17",
            dietary_restrictions="Laktoseintoleranz",
            **extra,
        )
        return c.id


def _populate(disk: Disk, n: int) -> tuple[UUID, dict[str, bytes]]:
    """A customer with several attributes, a rectified surname, consents (one double opt-in,
    with Idempotency-Keys), a self-service link and a signed-in session; and the exact bytes an
    erasure of them removes, the ciphertext of the surname rectified away included."""
    cid = _customer(disk, n)
    writer = _headers(disk, "customers:write", "consent:write")
    old = _secrets(disk, cid)["value:last_name"]
    r = disk.client.patch(
        f"/v1/customers/{cid}", json={"attributes": {"last_name": "Musterfrau"}}, headers=writer
    )
    assert r.status_code == 200, r.text
    for purpose, key in (("newsletter", f"doi-{n}"), ("personalised_offers", f"po-{n}")):
        r = disk.client.post(
            f"/v1/customers/{cid}/consents",
            json={"purpose": purpose, "status": "granted", "channel": "web"},
            headers={**writer, "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
    staff = _headers(disk, "dsr:execute")
    for kind, step, body in (
        ("access", "extension", {"months": 1, "reason": "complexity", "note": NOTE}),
        ("rectification", "close", {"status": "rejected", "reason": "excessive", "note": NOTE}),
    ):
        r = disk.client.post(
            "/v1/dsr/requests", json={"customer_id": str(cid), "kind": kind}, headers=staff
        )
        assert r.status_code == 201, r.text
        r = disk.client.post(f"/v1/dsr/requests/{r.json()['id']}/{step}", json=body, headers=staff)
        assert r.status_code == 200, r.text
    with disk.writer() as s:
        sign_in(disk.client, s, disk.runtime, cid)
        issue_link(disk.client, s, disk.runtime, cid)  # a spare link
    secrets = {k: v for k, v in _secrets(disk, cid).items() if v}
    secrets["value:last_name(rectified away)"] = old
    secrets["note (plaintext, never stored)"] = NOTE.encode()
    assert old != secrets["value:last_name"]
    return cid, secrets


def _secrets(disk: Disk, cid: UUID) -> dict[str, bytes]:
    """The exact bytes an erasure of ``cid`` removes."""
    out: dict[str, bytes] = {}
    with disk.session() as s:
        out["dek_wrapped"] = s.get(Customer, cid).dek_wrapped
        for v in s.execute(select(CustomerValue).where(CustomerValue.customer_id == cid)).scalars():
            out[f"value:{v.attribute}"] = v.ciphertext
        for b in s.execute(select(BlindIndex).where(BlindIndex.customer_id == cid)).scalars():
            out[f"digest:{b.attribute}"] = b.digest
        for c in s.execute(
            select(ConsentConfirmation).where(ConsentConfirmation.customer_id == cid)
        ).scalars():
            out[f"confirmation:{c.purpose}"] = c.token_hash.encode()
        for i in s.execute(
            select(ConsentIdempotency).where(ConsentIdempotency.customer_id == cid)
        ).scalars():
            out[f"idempotency:{i.key}:request_hash"] = i.request_hash.encode()
            if i.token_ciphertext:
                out[f"idempotency:{i.key}:token"] = i.token_ciphertext
        for x in s.execute(
            select(SelfserviceSession).where(SelfserviceSession.customer_id == cid)
        ).scalars():
            out["selfservice_session"] = x.id_hash.encode()
        for d in s.execute(
            select(DataSubjectRequest).where(DataSubjectRequest.customer_id == cid)
        ).scalars():
            out[f"note:{d.kind}:extension"] = d.extension_note
            out[f"note:{d.kind}:close"] = d.close_note
    return out


def _residue(data_dir: Path, secrets: dict[str, bytes]) -> list[str]:
    """Which of ``secrets`` occur in which file of the data directory (raw bytes)."""
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        try:
            blob = path.read_bytes()
        except FileNotFoundError:  # the mail deliverer's temporary file, renamed meanwhile
            continue
        found += [f"{name} in {path.name}" for name, b in secrets.items() if b in blob]
    return found


def _still_readable(disk: Disk, cid: UUID, email: str) -> None:
    r = disk.client.get(f"/v1/customers/{cid}/export", headers=_headers(disk, "dsr:execute"))
    assert r.status_code == 200, r.text
    assert email in r.text  # decrypted


def _erase(disk: Disk, door: str, cid: UUID, tmp_path: Path) -> None:
    if door == "api":
        r = disk.client.delete(f"/v1/customers/{cid}", headers=_headers(disk, "dsr:execute"))
        assert r.status_code == 204, r.text
    elif door == "me":
        r = disk.client.post(
            "/me/erase", data={"csrf_token": csrf(disk.client, "/me/erase"), "confirm": "yes"}
        )
        assert r.status_code == 200, r.text
    elif door == "batch":
        ids = tmp_path / "ids.txt"
        ids.write_text(f"{cid}\n")
        env = {"VAULT_DATA_DIR": str(disk.data_dir), "VAULT_AUDIT_SEAL_INTERVAL": "0"}
        result = CliRunner().invoke(cli, ["dsr", "erase-many", str(ids), "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.output.splitlines()[-1])["erased"] == 1
    else:
        raise AssertionError(door)
    with disk.session() as s:
        assert s.get(Customer, cid).status == "erased"


@pytest.mark.parametrize("door", ["api", "me", "batch"])
def test_no_byte_of_an_erased_customer_is_left_in_the_data_directory(disk, door, tmp_path):
    kept, _ = _populate(disk, 1)
    cid, secrets = _populate(disk, 2)  # signed in last: /me erases this one
    assert len([k for k in secrets if k.startswith("value:")]) >= 6
    assert any(k.startswith("digest:") for k in secrets)
    assert "selfservice_session" in secrets and "confirmation:newsletter" in secrets
    assert "note:access:extension" in secrets and "note:rectification:close" in secrets
    assert _residue(disk.data_dir, secrets), "the scan must see the bytes before the erasure"
    # a note is sealed: its plaintext is never on the disk, before or after
    assert not [x for x in _residue(disk.data_dir, secrets) if "plaintext" in x]

    _erase(disk, door, cid, tmp_path)

    assert _residue(disk.data_dir, secrets) == []
    _still_readable(disk, kept, "kundin1@example.de")


def test_retention_leaves_no_byte_of_the_values_it_deleted(disk):
    kept = _customer(disk, 1)
    cid = _customer(disk, 2)
    everything = _secrets(disk, cid)
    expired = {k: everything[k] for k in ("value:dietary_restrictions", "value:phone")}
    expired["digest:phone"] = everything["digest:phone"]
    with db.transaction(disk.engine) as s:
        s.execute(
            update(CustomerValue)
            .where(CustomerValue.customer_id == cid)
            .values(updated_at=datetime.now(UTC) - timedelta(days=800))
        )
    assert _residue(disk.data_dir, expired)

    report = retention.run(engine=disk.engine, policy=disk.runtime.policy)

    assert report.by_attribute == {"dietary_restrictions": 1, "phone": 1}
    assert _residue(disk.data_dir, expired) == []
    _still_readable(disk, cid, "kundin2@example.de")  # its other values stay
    _still_readable(disk, kept, "kundin1@example.de")


def _import_lines(n: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "attributes": {
                    "email": f"import{i}@example.de",
                    "first_name": "Ida",
                    "last_name": f"Import{i}",
                    "phone": f"+49 221 {1000000 + i}",
                }
            }
        )
        + b"\n"
        for i in range(n)
    )


def test_no_residue_after_a_large_import_grew_the_wal(disk, tmp_path):
    kept, _ = _populate(disk, 1)
    by_api, api_secrets = _populate(disk, 2)
    by_me, me_secrets = _populate(disk, 3)  # signed in last
    r = disk.client.post(
        "/v1/customers/import",
        content=_import_lines(20_000),
        headers={**_headers(disk, "customers:write"), "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 20_000
    wal = disk.data_dir / "vault.db-wal"
    assert wal.stat().st_size > 4 * 1024 * 1024  # the import grew the WAL
    for cid, secrets, door in ((by_api, api_secrets, "api"), (by_me, me_secrets, "me")):
        assert _residue(disk.data_dir, secrets)

        _erase(disk, door, cid, tmp_path)

        assert _residue(disk.data_dir, secrets) == [], door
        assert wal.stat().st_size == 0
    _still_readable(disk, kept, "kundin1@example.de")


def test_a_reader_holding_the_wal_makes_the_erasure_answer_incomplete(disk, monkeypatch):
    monkeypatch.setattr(db, "CHECKPOINT_PATIENCE", 0.3)
    kept = _customer(disk, 1)
    cid = _customer(disk, 2)
    secrets = _secrets(disk, cid)
    other = sqlite3.connect(disk.data_dir / "vault.db", isolation_level=None)
    other.execute("BEGIN")
    other.execute("SELECT count(*) FROM customer").fetchone()  # an open read transaction
    try:
        r = disk.client.delete(f"/v1/customers/{cid}", headers=_headers(disk, "dsr:execute"))
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "erasure_incomplete"
        assert int(r.headers["Retry-After"]) > 0
        with disk.session() as s:  # the erasure itself is committed
            assert s.get(Customer, cid).status == "erased"
        assert db.residue_pending(disk.engine)
        assert any(hit.endswith("vault.db-wal") for hit in _residue(disk.data_dir, secrets))
    finally:
        other.execute("ROLLBACK")
        other.close()
    # the next commit finishes the checkpoint (here: the export's audit event)
    _still_readable(disk, kept, "kundin1@example.de")
    assert not db.residue_pending(disk.engine)
    assert _residue(disk.data_dir, secrets) == []
    # repeating the erasure answers that the customer is erased
    r = disk.client.delete(f"/v1/customers/{cid}", headers=_headers(disk, "dsr:execute"))
    assert r.status_code == 410


def test_a_paused_audience_export_does_not_hold_the_wal(disk):
    """The export reads one batch per transaction and sends it after the transaction ended:
    a client that stops reading mid-stream does not block an erasure's checkpoint."""
    ids = [_customer(disk, n) for n in range(3)]
    writer = _headers(disk, "consent:write")
    for cid in ids:
        r = disk.client.post(
            f"/v1/customers/{cid}/consents",
            json={"purpose": "personalised_offers", "status": "granted", "channel": "web"},
            headers=writer,
        )
        assert r.status_code == 201, r.text
    policy = disk.runtime.policy
    stream = access_service.audience(
        engine=disk.engine,
        envelope=disk.runtime.envelope,
        policy=policy,
        principal=SimpleNamespace(
            purposes=frozenset({"personalised_offers"}), actor="client:test", request_id=None
        ),
        purpose=access_service.get_purpose(policy, "personalised_offers"),
        requested=None,
        now=utcnow(),
        batch_size=1,
    )
    first = next(stream)  # the client has one batch and pauses
    assert first.count(b"\n") == 1
    r = disk.client.delete(f"/v1/customers/{ids[2]}", headers=_headers(disk, "dsr:execute"))
    assert r.status_code == 204, r.text
    stream.close()


# --- PostgreSQL: VACUUM after erasure batches --------------------------------------------------


def test_postgres_vacuums_the_erased_tables_after_a_batch(backend, runtime, session, caplog):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    from vault.dsr import erasure
    from vault.provenance import CLI

    ids = [create_customer(session, runtime).id for _ in range(3)]
    session.rollback()
    with db.transaction(runtime.engine) as s:
        notary = erasure.Notary.of(runtime)
        assert erasure.erase_many(session=s, customer_ids=ids, by=CLI, notary=notary).erased == ids
    with runtime.engine.connect() as conn:
        vacuumed = dict(
            conn.exec_driver_sql(
                "SELECT relname, last_vacuum FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                (list(erasure.ERASED_TABLES),),
            ).all()
        )
    assert set(vacuumed) == set(erasure.ERASED_TABLES)
    assert all(v is not None for v in vacuumed.values()), vacuumed
    # best-effort: a VACUUM that fails is a warning, the erasure stands
    with caplog.at_level(logging.WARNING, logger="vault.db"):
        assert db.scrub_deleted(runtime.engine, vacuum=["no_such_table"])
    assert "VACUUM after an erasure failed" in caplog.text
