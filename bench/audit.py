"""Audit log throughput: events recorded (record_many), sealed (hash chain) and verified per second.

python -m bench.audit [--events N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import time
import uuid

from sqlmodel import Session

from bench.common import machine, throwaway_runtime
from vault.audit.record import record_many
from vault.audit.seal import seal_pending
from vault.audit.verify import verify_engine


def run(events: int, database_url: str | None = None, batch: int = 10_000) -> dict[str, float]:
    with throwaway_runtime(database_url) as rt:
        customers = [uuid.uuid4() for _ in range(1000)]
        t0 = time.perf_counter()
        for start in range(0, events, batch):
            rows = [
                {
                    "actor": "client:cv_bench",
                    "action": "data.export",
                    "outcome": "allowed",
                    "customer_id": customers[i % 1000],
                    "purpose": "personalised_offers",
                    "attributes": ["email", "first_name", "postal_code"],
                    "request_id": f"bench{start // batch}",
                }
                for i in range(start, min(start + batch, events))
            ]
            with Session(rt.engine) as s:
                record_many(session=s, events=rows)
                s.commit()
        recorded = events / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        sealed = seal_pending(engine=rt.engine, keys=rt.keys, checkpoint=None, batch_size=50_000)
        seal_rate = sealed.sealed / (time.perf_counter() - t0)

        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            result = verify_engine(engine=rt.engine, keys=rt.keys)
            timings.append(time.perf_counter() - t0)
            assert result.ok and result.checked == events, result
        verify_rate = events / sorted(timings)[1]
    return {
        "recorded_per_s": recorded,
        "sealed_per_s": seal_rate,
        "verified_per_s (median of 3)": verify_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    result = run(args.events, args.database_url)
    db = "PostgreSQL" if args.database_url else "SQLite"
    print(f"machine: {machine()}; {db}; {args.events:,} events")
    for name, value in result.items():
        print(f"{name}: {value:,.0f}")


if __name__ == "__main__":
    main()
