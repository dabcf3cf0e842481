"""Key rewrap: data keys re-wrapped per second after a KEK rotation, through the same batches
``vault keys rewrap`` runs.

    python -m bench.rewrap [--customers 100000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import time

from sqlmodel import Session

from bench.common import machine, throwaway_runtime
from bench.seed import seed
from vault.crypto.keys import KEY_FILE_NAME, LocalKeyFile
from vault.customers import service
from vault.runtime import Runtime


def run(customers: int, batch: int = 5000) -> dict[str, float]:
    with throwaway_runtime() as rt:
        seed(rt, customers)
        LocalKeyFile(rt.settings.data_dir / KEY_FILE_NAME).rotate()
        cli = Runtime.build(rt.settings, engine=rt.engine)
        total = 0
        after = None
        t0 = time.perf_counter()
        while True:
            with Session(cli.engine) as s:
                n, after = service.rewrap_batch(
                    session=s, envelope=cli.envelope, after=after, batch_size=batch
                )
                s.commit()
            total += n
            if after is None:
                break
        elapsed = time.perf_counter() - t0
    assert total == customers
    return {"keys_rewrapped_per_s": total / elapsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=5000)
    a = p.parse_args()
    r = run(a.customers, a.batch)
    print(f"machine: {machine()}; SQLite; {a.customers:,} customers")
    print(f"keys_rewrapped_per_s: {r['keys_rewrapped_per_s']:,.0f} (goal >= 50,000/s)")


if __name__ == "__main__":
    main()
