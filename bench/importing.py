"""Bulk import: customers per second with 6 attributes and 2 consents each.

    python -m bench.importing [--customers 20000] [--chunk 2000]

Runs the same code as ``vault import FILE.ndjson`` (chunks of validated, encrypted rows with one
executemany per table, one signed receipt per consent event) against a throwaway SQLite vault.
"""

from __future__ import annotations

import argparse
import time

import orjson
from sqlmodel import Session

from bench.common import machine, scratch_database, throwaway_runtime
from vault.customers import importer
from vault.provenance import Caller


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


def run(customers: int, chunk: int, database_url: str | None = None) -> dict[str, float]:
    lines = [line(i) for i in range(customers)]
    with scratch_database(database_url) as url, throwaway_runtime(url) as rt:
        report = importer.ImportReport()
        t0 = time.perf_counter()
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
    assert report.created == customers, report.as_dict()["errors"][:3]
    return {"customers_per_s": customers / elapsed, "consent_events": report.consents}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--chunk", type=int, default=2000)
    p.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (a scratch database is made)"
    )
    a = p.parse_args()
    r = run(a.customers, a.chunk, a.database_url)
    db = "PostgreSQL" if a.database_url else "SQLite"
    print(f"machine: {machine()}; {db}; {a.customers:,} customers x 6 attributes + 2 consents")
    print(f"imported_customers_per_s: {r['customers_per_s']:,.0f} (goal >= 20,000/s)")


if __name__ == "__main__":
    main()
