"""Every benchmark, one table: ``python -m bench [--quick] [--write]``.

--quick   small sizes, finishes in about a minute (CI's smoke test uses the scripts directly)
--write   append the table, the date, the machine and the exact command to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import sqlite3
import sys
import time

from bench.common import machine
from vault import PROJECT_ROOT

FULL = {
    "read": {"customers": 10_000, "audience": 200_000, "seconds": 10},
    "import": {"customers": 20_000},
    "consent": {"customers": 1000, "seconds": 10},
    "audit": {"events": 1_000_000},
    "erasure": {"customers": 10_000},
    "rewrap": {"customers": 100_000},
}
QUICK = {
    "read": {"customers": 2000, "audience": 20_000, "seconds": 3},
    "import": {"customers": 3000},
    "consent": {"customers": 200, "seconds": 3},
    "audit": {"events": 100_000},
    "erasure": {"customers": 2000},
    "rewrap": {"customers": 10_000},
}


def _rows(sizes: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []

    def add(name: str, value: str, goal: str) -> None:
        rows.append((name, value, goal))
        print(f"  {name:<34} {value:>28}   {goal}", flush=True)

    from bench import audit, consent, importing, read, rewrap

    r = read.run(**sizes["read"])
    add("bare FastAPI constant JSON", f"{r['bare_rps']:,.0f} req/s", "baseline")
    add(
        "consent-gated read",
        f"{r['gated_rps']:,.0f} req/s",
        f">= 50% of bare: {r['ratio']:.0%}",
    )
    add("  p50 / p99", f"{r['gated_p50_ms']:.1f} / {r['gated_p99_ms']:.1f} ms", "p99 <= 25 ms")
    add("audience export", f"{r['audience_per_s']:,.0f} customers/s", ">= 100,000/s")
    r = importing.run(sizes["import"]["customers"], 2000)
    add(
        "bulk import (6 attrs, 2 consents)",
        f"{r['customers_per_s']:,.0f} customers/s",
        ">= 20,000/s",
    )
    r = consent.run(sizes["consent"]["customers"], sizes["consent"]["seconds"], 16, "wrk", False)
    add("consent writes (HTTP)", f"{r['writes_per_s']:,.0f} /s", ">= 1,000/s")
    r = audit.run(sizes["audit"]["events"])
    add("audit verify", f"{r['verified_per_s (median of 3)']:,.0f} events/s", ">= 500,000/s")
    try:
        erasure = importlib.import_module("bench.erasure")
    except ImportError:
        add("erasure", "n/a (bench.erasure missing)", ">= 2,000/s")
    else:
        r = erasure.run(sizes["erasure"]["customers"])
        rate = next(v for k, v in r.items() if k.endswith("per_s"))
        add("erasure (batch)", f"{rate:,.0f} customers/s", ">= 2,000/s")
    r = rewrap.run(sizes["rewrap"]["customers"])
    add("key rewrap", f"{r['keys_rewrapped_per_s']:,.0f} keys/s", ">= 50,000/s")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    sizes = QUICK if a.quick else FULL
    command = "python -m bench" + (" --quick" if a.quick else "") + (" --write" if a.write else "")
    header = (
        f"machine: {machine()}; SQLite {sqlite3.sqlite_version}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(header)
    t0 = time.perf_counter()
    rows = _rows(sizes)
    took = time.perf_counter() - t0
    print(f"took {took:.0f} s")
    if a.write:
        table = "\n".join(f"| {n} | {v} | {g} |" for n, v, g in rows)
        text = (
            f"\n## All benchmarks ({dt.date.today().isoformat()})\n\n"
            f"Command: `{command}` ({took:.0f} s). {header}; sizes: {sizes}\n\n"
            "| benchmark | result | goal |\n|---|---|---|\n" + table + "\n"
        )
        with (PROJECT_ROOT / "BENCHMARKS.md").open("a") as fh:
            fh.write(text)
        print("appended to BENCHMARKS.md")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
