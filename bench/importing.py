"""Bulk import: customers per second with 6 attributes and 2 consents each.

    python -m bench.importing [--customers 20000] [--chunk 2000] [--database-url URL]
                              [--with-reads SECONDS]

In-process (default): the same code as ``vault import FILE.ndjson`` (chunks of validated,
encrypted rows with one executemany per table, one signed receipt per consent event) against a
throwaway vault; reports customers/s and the CPU per customer of this process.

``--with-reads S``: through the API while gated reads run: ``vault serve --workers 1`` with
2,000 readable customers; wrk drives ``GET /v1/customers/{id}/data`` (16 connections) for S
seconds while this script posts NDJSON imports of ``--chunk`` lines to
``POST /v1/customers/import`` one after the other until wrk is done. Reports the import rate
over that window, the reads' rate and p99, and the server's CPU.

Both modes then check that every imported consent event has a receipt that verifies.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select
from sqlmodel import Session

from bench.common import machine, scratch_database, throwaway_runtime
from bench.load import cpu_seconds, free_port, server, wrk
from vault.auth import service as auth_service
from vault.config import Settings
from vault.consent.models import ConsentEvent
from vault.consent.receipts import RECEIPT_TYP
from vault.customers import importer
from vault.db import upgrade
from vault.provenance import Caller
from vault.runtime import Runtime

READ_PURPOSE = "personalised_offers"


def line(i: int) -> bytes:
    return orjson.dumps(
        {
            "external_id": f"B{i}",
            "attributes": {
                "email": f"kunde{i}@tante-emma.example",
                "first_name": "Erika",
                "last_name": f"Mustermann{i}",
                "birth_date": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "postal_code": f"{10000 + i % 89999:05d}",
                "phone": f"+4930{1000000 + i}",
            },
            "consents": [
                {"purpose": "personalised_offers", "status": "granted", "channel": "web"},
                {"purpose": "newsletter", "status": "confirmed", "channel": "email"},
            ],
        }
    )


def check_receipts(rt: Runtime, expected: int) -> int:
    """Every consent event has a receipt; a sample of them verifies. Returns the count."""
    with Session(rt.engine) as s:
        total = s.execute(select(func.count()).select_from(ConsentEvent)).scalar_one()
        missing = s.execute(
            select(func.count()).select_from(ConsentEvent).where(ConsentEvent.receipt.is_(None))
        ).scalar_one()
        sample = s.execute(select(ConsentEvent.receipt).limit(50)).scalars().all()
    if total < expected or missing:
        raise SystemExit(f"receipts: {total} events (expected {expected}), {missing} without one")
    for receipt in sample:
        rt.signer.verify_payload(receipt, typ=RECEIPT_TYP)
    return total


def run(customers: int, chunk: int, database_url: str | None = None) -> dict[str, float]:
    lines = [line(i) for i in range(customers)]
    with scratch_database(database_url) as url, throwaway_runtime(url) as rt:
        report = importer.ImportReport()
        t0 = time.perf_counter()
        c0 = time.process_time()
        for part in importer.chunks(lines, chunk):
            with Session(rt.engine) as s:
                importer.import_chunk(
                    session=s,
                    envelope=rt.envelope,
                    policy=rt.policy,
                    signer=rt.signer,
                    settings=rt.settings,
                    chunk=part,
                    report=report,
                    by=Caller("bench"),
                )
                s.commit()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        check_receipts(rt, 2 * customers)
    assert report.created == customers, report.as_dict()["errors"][:3]
    return {
        "customers_per_s": customers / elapsed,
        "cpu_us_per_customer": cpu * 1e6 / customers,
        "consent_events": report.consents,
    }


def _client(rt: Runtime, scopes: list[str], purposes: list[str]) -> tuple[str, str]:
    with Session(rt.engine, expire_on_commit=False) as s:
        client, _secret = auth_service.create_client(
            session=s, policy=rt.policy, name="bench", scopes=scopes, purposes=purposes
        )
        s.commit()
    token, _ = auth_service.issue_access_token(
        client=client, signer=rt.signer, settings=rt.settings, requested_scope=None
    )
    return client.id, token


def run_with_reads(seconds: int, chunk: int, database_url: str | None = None) -> dict[str, float]:
    from bench.seed import seed

    with scratch_database(database_url) as db, tempfile.TemporaryDirectory(prefix="vb-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", database_url=db, _env_file=None)
        settings.data_dir.mkdir()
        url = settings.resolved_database_url
        upgrade(url)
        rt = Runtime.build(settings)
        ids = seed(rt, 2000, states=lambda i: {READ_PURPOSE: ("granted", 1, 5)})
        _, read_token = _client(rt, ["data:read"], [READ_PURPOSE])
        _, import_token = _client(rt, ["customers:write", "consent:write"], [])
        env = {"VAULT_DATA_DIR": str(settings.data_dir), "VAULT_DATABASE_URL": url}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "vault.cli", "serve", "--port", str(port), "--workers", "1"]
        paths = [f"/v1/customers/{cid}/data?purpose={READ_PURPOSE}" for cid in ids]
        with server(cmd, f"{base}/healthz", env=env, log=Path(tmp) / "serve.log") as proc:
            wrk(base, paths, read_token, seconds=2)  # warm-up
            result: dict = {}
            reader = threading.Thread(
                target=lambda: result.update(reads=wrk(base, paths, read_token, seconds=seconds))
            )
            imported, n = 0, 100_000  # past the seeded readers (same e-mail pattern)
            headers = {
                "Authorization": f"Bearer {import_token}",
                "Content-Type": "application/x-ndjson",
            }
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            reader.start()
            with httpx.Client(base_url=base, headers=headers, timeout=600) as c:
                while reader.is_alive():
                    body = b"\n".join(line(i) for i in range(n, n + chunk)) + b"\n"
                    n += chunk
                    r = c.post("/v1/customers/import", content=body)
                    r.raise_for_status()
                    imported += r.json()["created"]
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            reader.join()
        check_receipts(rt, 2 * imported)
        rt.engine.dispose()
    reads = result["reads"]
    if reads.non_2xx:
        raise SystemExit(f"{reads.non_2xx} non-2xx answers to the reads")
    return {
        "customers_per_s": imported / elapsed,
        "imported": imported,
        "reads_per_s": reads.requests_per_s,
        "read_p50_ms": reads.p50_ms,
        "read_p99_ms": reads.p99_ms,
        "server_cpu_s": cpu,
        "elapsed_s": elapsed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--chunk", type=int, default=2000)
    p.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (a scratch database is made)"
    )
    p.add_argument("--with-reads", type=int, default=0, metavar="SECONDS")
    a = p.parse_args()
    db = "PostgreSQL" if a.database_url else "SQLite"
    goal = 10_000 if a.database_url else 20_000
    if a.with_reads:
        r = run_with_reads(a.with_reads, a.chunk, a.database_url)
        print(f"machine: {machine()}; {db}; import over HTTP while wrk -c16 reads, {a.with_reads}s")
        print(
            f"imported_customers_per_s: {r['customers_per_s']:,.0f} (goal >= {goal:,}/s); "
            f"{r['imported']:,} customers x 6 attributes + 2 consents, receipts verified"
        )
        print(
            f"gated reads meanwhile: {r['reads_per_s']:,.0f} req/s, p50 {r['read_p50_ms']:.1f} ms,"
            f" p99 {r['read_p99_ms']:.1f} ms (goal <= 50 ms); server CPU {r['server_cpu_s']:.1f} s"
            f" over {r['elapsed_s']:.1f} s"
        )
        return
    r = run(a.customers, a.chunk, a.database_url)
    print(f"machine: {machine()}; {db}; {a.customers:,} customers x 6 attributes + 2 consents")
    print(
        f"imported_customers_per_s: {r['customers_per_s']:,.0f} (goal >= {goal:,}/s); "
        f"CPU {r['cpu_us_per_customer']:.0f} us/customer in-process; receipts verified"
    )


if __name__ == "__main__":
    main()
