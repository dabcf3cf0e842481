"""Batch erasure throughput: customers crypto-shredded per second by ``erase_many``.

python -m bench.erasure [--customers N] [--database-url URL]

Seeds N customers (6 encrypted values, an e-mail blind index and two consent states each) with
bench/seed.py, then erases all of them with ``vault.dsr.erasure.erase_many`` in one transaction
(tombstones, deleted values and index rows, a completed erasure request, one audit event and one
``customer.erased`` outbox event and one signed, stored and journaled erasure certificate per
customer) and commits. The figure includes the commit.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import func, select
from sqlmodel import Session

from bench.common import machine, throwaway_runtime
from bench.seed import seed
from vault.customers.models import Customer, CustomerValue
from vault.dsr import erasure
from vault.provenance import Caller


def run(customers: int, database_url: str | None = None) -> dict[str, float]:
    with throwaway_runtime(database_url) as rt:
        ids = seed(
            rt,
            customers,
            states=lambda i: {
                "personalised_offers": ("granted", 1, 3),
                "third_party_ads": ("refused", 1, 3),
            },
        )
        t0 = time.perf_counter()
        with Session(rt.engine) as s:
            result = erasure.erase_many(
                session=s, customer_ids=ids, by=Caller("cli"), notary=erasure.Notary.of(rt)
            )
            s.commit()
        elapsed = time.perf_counter() - t0
        with Session(rt.engine) as s:
            left = s.execute(select(func.count()).select_from(CustomerValue)).scalar_one()
            erased = s.execute(
                select(func.count()).where(
                    Customer.status == "erased", Customer.dek_wrapped.is_(None)
                )
            ).scalar_one()
        assert len(result.erased) == customers and left == 0 and erased == customers
    return {"customers": customers, "seconds": elapsed, "erased_per_s": customers / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}; {'SQLite' if not args.database_url else 'PostgreSQL'}")
    for key, value in run(args.customers, args.database_url).items():
        print(f"{key}: {value:,.2f}" if isinstance(value, float) else f"{key}: {value:,}")


if __name__ == "__main__":
    main()
