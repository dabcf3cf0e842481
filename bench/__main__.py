"""Every benchmark, one table: ``python -m bench [--quick] [--write]``.

--quick   small sizes, finishes in about a minute (CI's smoke test uses the scripts directly)
--write   append the table, the date, the machine and the exact command to BENCHMARKS.md
--database postgresql+psycopg://postgres@127.0.0.1:5432/postgres
          run the read, import and consent-write figures on PostgreSQL too, and the read
          served by one and by two `vault serve` processes with each one's CPU per read
          (a scratch database per run, dropped afterwards)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sqlite3
import sys
import time

from bench.common import machine
from vault import PROJECT_ROOT

FULL = {
    "read": {"customers": 10_000, "audience": 200_000, "seconds": 10},
    "import": {"customers": 20_000, "with_reads_seconds": 10},
    "consent": {"customers": 1000, "seconds": 10},
    "audit": {"events": 1_000_000},
    "erasure": {"customers": 10_000},
    "rewrap": {"customers": 100_000},
    "scale": {"customers": 20_000, "seconds": 8},
}
QUICK = {
    "read": {"customers": 2000, "audience": 20_000, "seconds": 3},
    "import": {"customers": 3000, "with_reads_seconds": 3},
    "consent": {"customers": 200, "seconds": 3},
    "audit": {"events": 100_000},
    "erasure": {"customers": 2000},
    "rewrap": {"customers": 10_000},
    "scale": {"customers": 2000, "seconds": 3},
}

Row = tuple[str, str, str, str, str]  # figure, result, ratio to the baseline, server CPU, goal


def _rows(sizes: dict, databases: list[str | None]) -> list[Row]:
    rows: list[Row] = []

    def add(name: str, value: str, ratio: str, cpu: str, goal: str) -> None:
        rows.append((name, value, ratio, cpu, goal))
        print(f"  {name:<40} {value:>32} {ratio:>7} {cpu:>20}   {goal}", flush=True)

    from bench import audit, consent, importing, read, rewrap, scale

    print(f"  {'figure':<40} {'result':>32} {'ratio':>7} {'server CPU/op':>20}   goal")
    for url in databases:
        db = "PostgreSQL" if url else "SQLite"
        r = read.run(**sizes["read"], database_url=url)
        bare = r["bare_rps"]
        add(
            f"bare FastAPI async constant ({db} run)",
            f"{bare:,.0f} req/s",
            "1.00",
            f"{r['bare_cpu_ms']:.3f} ms/req",
            "baseline",
        )
        add(
            f"consent-gated read, {db}",
            f"{r['gated_rps']:,.0f} req/s",
            f"{r['ratio']:.2f}",
            f"{r['gated_cpu_ms']:.3f} ms/read",
            ">= 0.50x (SQLite), >= 0.40x (PostgreSQL)",
        )
        add(
            "  p50 / p99",
            f"{r['gated_p50_ms']:.1f} / {r['gated_p99_ms']:.1f} ms",
            "",
            "",
            "p99 <= 25 ms",
        )
        if "audience_per_s" in r:
            add(
                f"audience export, {db}",
                f"{r['audience_per_s']:,.0f} customers/s",
                "",
                f"{r['audience_cpu_us']:.1f} us/customer",
                ">= 100,000/s",
            )
        goal = ">= 10,000/s" if url else ">= 20,000/s"
        r = importing.run(sizes["import"]["customers"], 2000, url)
        add(
            f"bulk import in-process, {db}",
            f"{r['customers_per_s']:,.0f} customers/s",
            "",
            f"{r['cpu_us_per_customer']:.0f} us/customer",
            goal + " (6 attrs, 2 consents, receipts)",
        )
        r = importing.run_with_reads(sizes["import"]["with_reads_seconds"], 2000, url)
        add(
            f"bulk import over HTTP with reads, {db}",
            f"{r['customers_per_s']:,.0f} customers/s",
            "",
            f"{r['server_cpu_s'] * 1e6 / max(r['imported'], 1):.0f} us/customer*",
            goal,
        )
        add(
            "  gated reads meanwhile p50 / p99",
            f"{r['read_p50_ms']:.1f} / {r['read_p99_ms']:.1f} ms",
            f"{r['reads_per_s'] / bare:.2f}",
            "",
            "p99 <= 50 ms",
        )
        c = sizes["consent"]
        r = consent.run(c["customers"], c["seconds"], 16, "wrk", False, url)
        add(
            f"consent writes (HTTP), {db}",
            f"{r['writes_per_s']:,.0f} /s",
            f"{r['writes_per_s'] / bare:.2f}",
            f"{r['server_cpu_ms_per_write']:.3f} ms/write",
            ">= 1,000/s",
        )
        add(
            "  p50 / p99; projection vs ledger",
            f"{r['p50']} / {r['p99']}",
            "",
            "",
            "p99 <= 50 ms; " + ("equal" if r["rebuild_ok"] else "DIFFERENT"),
        )
    if len(databases) > 1:  # goal 5: several `vault serve` processes on one PostgreSQL
        r = scale.postgres_scale(databases[1], **sizes["scale"])
        add(
            "gated read, one vault serve, PostgreSQL",
            f"{r['one_rps']:,.0f} req/s, p99 {r['one_p99']:.1f} ms",
            "",
            f"{r['one_cpu_ms']:.3f} ms/read",
            "",
        )
        add(
            "gated read, two vault serve, PostgreSQL",
            f"{r['two_rps']:,.0f} req/s, p99 {r['two_p99']:.1f} ms",
            f"{r['two_rps'] / max(r['one_rps'], 1):.2f}",
            " / ".join(f"{c:.3f}" for c in r["two_cpu_ms"]) + " ms/read",
            "two serve more than one (ratio to one > 1)",
        )
    r = audit.run(sizes["audit"]["events"])
    add(
        "audit verify, SQLite",
        f"{r['verified_per_s (median of 3)']:,.0f} events/s",
        "",
        "",
        ">= 500,000/s",
    )
    try:
        erasure = importlib.import_module("bench.erasure")
    except ImportError:
        add("erasure", "n/a (bench.erasure missing)", "", "", ">= 2,000/s")
    else:
        r = erasure.run(sizes["erasure"]["customers"])
        rate = next(v for k, v in r.items() if k.endswith("per_s"))
        add("erasure (batch), SQLite", f"{rate:,.0f} customers/s", "", "", ">= 2,000/s")
    r = rewrap.run(sizes["rewrap"]["customers"])
    add("key rewrap, SQLite", f"{r['keys_rewrapped_per_s']:,.0f} keys/s", "", "", ">= 50,000/s")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", action="store_true")
    p.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="also run the PostgreSQL variants; URL of a database to connect to (each run "
        "creates and drops a scratch database beside it)",
    )
    a = p.parse_args()
    sizes = QUICK if a.quick else FULL
    command = (
        "python -m bench"
        + (" --quick" if a.quick else "")
        + (" --write" if a.write else "")
        + (f" --database {a.database}" if a.database else "")
    )
    header = (
        f"machine: {machine()}; load average before {os.getloadavg()[0]:.1f}; "
        f"SQLite {sqlite3.sqlite_version}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(header)
    t0 = time.perf_counter()
    rows = _rows(sizes, [None, a.database] if a.database else [None])
    took = time.perf_counter() - t0
    print(f"took {took:.0f} s; load average after {os.getloadavg()[0]:.1f}")
    print("ratio: requests/s over the bare async baseline of the same run and database")
    print("* server CPU over the import window includes the concurrent gated reads")
    if a.write:
        table = "\n".join(f"| {' | '.join(row)} |" for row in rows)
        text = (
            f"\n## All benchmarks ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: `{command}` ({took:.0f} s). {header}; load average after "
            f"{os.getloadavg()[0]:.1f}; sizes: {sizes}\n\n"
            "| figure | result | ratio to bare | server CPU per op | goal |\n"
            "|---|---|---|---|---|\n" + table + "\n\n"
            "ratio: requests/s over the bare `async def` baseline served the same way in the "
            "same run. Import over HTTP: its server CPU includes the concurrent gated reads.\n"
        )
        with (PROJECT_ROOT / "BENCHMARKS.md").open("a") as fh:
            fh.write(text)
        print("appended to BENCHMARKS.md")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
