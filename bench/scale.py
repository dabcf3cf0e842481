"""Scale-out benchmarks.

    python -m bench.scale sqlite [--large 1000000] [--small 10000] [--seconds 8]
        consent-gated read p50 with 10,000 customers, then with 1,000,000 (goal: within 1.3x),
        and the audience export over all allowed customers of the large set

    python -m bench.scale postgres --database-url postgresql+psycopg://postgres@127.0.0.1/test
        [--customers 20000] [--seconds 8]
        the read against PostgreSQL with one `vault serve` process, then two processes sharing
        the database (two wrk instances, 8 connections each); `vault audit verify` afterwards

The PostgreSQL mode creates and drops its own database next to the one named in the URL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import machine, scratch_database
from bench.load import cpu_seconds, free_port, server, wrk
from bench.read import PURPOSE, _granted, _token
from bench.seed import seed
from vault.config import Settings
from vault.db import upgrade
from vault.runtime import Runtime


def _serve_cmd(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vault.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-migrate",
    ]


def _paths(ids) -> list[str]:
    return [f"/v1/customers/{cid}/data?purpose={PURPOSE}" for cid in ids]


def sqlite_scale(small: int, large: int, seconds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vault-scale-") as tmp:
        settings = Settings(data_dir=Path(tmp), _env_file=None)
        url = settings.resolved_database_url
        upgrade(url)
        rt = Runtime.build(settings)
        ids = seed(rt, small, states=_granted, batch=20_000)
        token = _token(rt)
        env = {"VAULT_DATA_DIR": tmp, "VAULT_DATABASE_URL": url}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with server(_serve_cmd(port), f"{base}/healthz", env=env):
            wrk(base, _paths(ids), token, seconds=2)
            first = wrk(base, _paths(ids), token, seconds=seconds)
        print(
            f"read at {small:,}: p50 {first.p50_ms:.2f} ms, {first.requests_per_s:,.0f} req/s",
            flush=True,
        )
        t0 = time.perf_counter()
        more = seed(rt, large - small, states=_granted, start=small, batch=20_000)
        out["seeded_per_s"] = (large - small) / (time.perf_counter() - t0)
        all_ids = ids + more
        with server(_serve_cmd(port), f"{base}/healthz", env=env):
            wrk(base, _paths(all_ids[::50]), token, seconds=2)
            second = wrk(base, _paths(all_ids[::7]), token, seconds=seconds)
            t0 = time.perf_counter()
            n = 0
            with httpx.stream(
                "GET",
                f"{base}/v1/purposes/{PURPOSE}/audience",
                params={"contact_channel": "email"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=3600,
            ) as r:
                for line in r.iter_lines():
                    n += bool(line)
            out["audience_per_s"] = n / (time.perf_counter() - t0)
            out["audience_customers"] = n
        rt.engine.dispose()
    out.update(
        p50_small=first.p50_ms,
        p50_large=second.p50_ms,
        rps_small=first.requests_per_s,
        rps_large=second.requests_per_s,
        ratio=second.p50_ms / first.p50_ms,
    )
    return out


def postgres_scale(database_url: str, customers: int, seconds: int) -> dict:
    out: dict = {}
    with scratch_database(database_url) as url:
        with tempfile.TemporaryDirectory(prefix="vault-scale-") as tmp:
            settings = Settings(data_dir=Path(tmp), database_url=url, _env_file=None)
            upgrade(url)
            rt = Runtime.build(settings)
            ids = seed(rt, customers, states=_granted, batch=10_000)
            token = _token(rt)
            env = {"VAULT_DATA_DIR": tmp, "VAULT_DATABASE_URL": url}
            p1, p2 = free_port(), free_port()
            b1, b2 = f"http://127.0.0.1:{p1}", f"http://127.0.0.1:{p2}"
            paths = _paths(ids)
            with server(_serve_cmd(p1), f"{b1}/healthz", env=env) as s1:
                wrk(b1, paths, token, seconds=2)
                cpu0 = cpu_seconds(s1.pid)
                one = wrk(b1, paths, token, seconds=seconds)
                one_cpu = cpu_seconds(s1.pid) - cpu0
                with server(_serve_cmd(p2), f"{b2}/healthz", env=env) as s2:
                    wrk(b2, paths, token, seconds=2)
                    procs = (s1, s2)
                    cpu0s = [cpu_seconds(s.pid) for s in procs]
                    with concurrent.futures.ThreadPoolExecutor(2) as pool:
                        runs = [
                            pool.submit(wrk, b, paths, token, seconds=seconds, connections=8)
                            for b in (b1, b2)
                        ]
                        two = [f.result() for f in runs]
                    two_cpu = [cpu_seconds(s.pid) - c for s, c in zip(procs, cpu0s, strict=True)]
            verify = subprocess.run(
                [sys.executable, "-m", "vault.cli", "audit", "verify", "--json"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=False,
            )
            rt.engine.dispose()
        out.update(
            one_rps=one.requests_per_s,
            one_p50=one.p50_ms,
            one_p99=one.p99_ms,
            two_rps=sum(r.requests_per_s for r in two),
            two_p50=max(r.p50_ms for r in two),
            two_p99=max(r.p99_ms for r in two),
            # server CPU per answered read, of each `vault serve` process
            one_cpu_ms=one_cpu * 1000 / max(one.requests, 1),
            two_cpu_ms=[c * 1000 / max(r.requests, 1) for c, r in zip(two_cpu, two, strict=True)],
            non_2xx=one.non_2xx + sum(r.non_2xx for r in two),
            verify=verify.stdout.strip(),
            verify_exit=verify.returncode,
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sqlite")
    s.add_argument("--small", type=int, default=10_000)
    s.add_argument("--large", type=int, default=1_000_000)
    s.add_argument("--seconds", type=int, default=8)
    g = sub.add_parser("postgres")
    g.add_argument("--database-url", required=True)
    g.add_argument("--customers", type=int, default=20_000)
    g.add_argument("--seconds", type=int, default=8)
    a = p.parse_args()
    print(f"machine: {machine()}")
    if a.mode == "sqlite":
        r = sqlite_scale(a.small, a.large, a.seconds)
        print(
            f"SQLite read p50 at {a.small:,}: {r['p50_small']:.2f} ms ({r['rps_small']:,.0f} req/s)"
        )
        print(
            f"SQLite read p50 at {a.large:,}: {r['p50_large']:.2f} ms ({r['rps_large']:,.0f} req/s)"
        )
        print(f"ratio large/small p50: {r['ratio']:.2f} (goal <= 1.3)")
        print(f"seeding: {r['seeded_per_s']:,.0f} customers/s")
        print(
            f"audience export over {r['audience_customers']:,}: "
            f"{r['audience_per_s']:,.0f} customers/s"
        )
    else:
        r = postgres_scale(a.database_url, a.customers, a.seconds)
        print(f"PostgreSQL, {a.customers:,} customers, wrk 16 connections in total")
        print(
            f"one vault serve : {r['one_rps']:,.0f} req/s, p50 {r['one_p50']:.1f} ms, "
            f"p99 {r['one_p99']:.1f} ms, server CPU {r['one_cpu_ms']:.3f} ms/read"
        )
        print(
            f"two vault serve : {r['two_rps']:,.0f} req/s combined "
            f"(worst p50 {r['two_p50']:.1f} ms, worst p99 {r['two_p99']:.1f} ms), server CPU "
            + " / ".join(f"{c:.3f}" for c in r["two_cpu_ms"])
            + " ms/read per process"
        )
        print(f"non-2xx answers : {r['non_2xx']}")
        print(f"audit verify afterwards (exit {r['verify_exit']}): {r['verify']}")


if __name__ == "__main__":
    main()
