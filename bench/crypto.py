"""Customers created per second and values decrypted per second, through the service layer.

python -m bench.crypto [--customers N]
"""

from __future__ import annotations

import argparse
import time

from sqlmodel import Session, select

from bench.common import machine, throwaway_runtime
from vault.customers import service
from vault.customers.models import Customer


def profile(i: int) -> dict:
    return {
        "email": f"kunde{i}@example.de",
        "first_name": "Erika",
        "last_name": f"Mustermann{i}",
        "birth_date": "1984-05-17",
        "postal_code": f"{10000 + i % 89999:05d}",
        "phone": f"+4930{1000000 + i}",
    }


def run(customers: int, batch: int = 500) -> dict[str, float]:
    with throwaway_runtime() as rt:
        t0 = time.perf_counter()
        for start in range(0, customers, batch):
            with Session(rt.engine) as s:
                for i in range(start, min(start + batch, customers)):
                    service.create_customer(
                        session=s, envelope=rt.envelope, policy=rt.policy, attributes=profile(i)
                    )
                s.commit()
        created = customers / (time.perf_counter() - t0)

        with Session(rt.engine) as s:
            rows = s.execute(select(Customer)).scalars().all()
            t0 = time.perf_counter()
            n = 0
            for c in rows:
                n += len(service.decrypt_values(session=s, envelope=rt.envelope, customer=c))
            decrypted = n / (time.perf_counter() - t0)
    return {"customers_created_per_s": created, "values_decrypted_per_s": decrypted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    args = parser.parse_args()
    result = run(args.customers)
    print(f"machine: {machine()}; SQLite; {args.customers} customers x 6 attributes")
    for name, value in result.items():
        print(f"{name}: {value:,.0f}")


if __name__ == "__main__":
    main()
