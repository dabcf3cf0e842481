"""Consent writes per second through the HTTP API, one server worker, SQLite.

    python -m bench.consent [--customers 1000] [--seconds 10] [--connections 16]
                            [--driver wrk|httpx] [--idempotency]

Starts ``vault serve --workers 1`` on a free loopback port with a temporary data directory
(SQLite), registers a client with ``vault clients create --json``, fetches a token, creates the
customers through the API, then drives ``POST /v1/customers/{id}/consents`` (random customer,
purpose among personalised_offers / push_notifications / third_party_ads, grant or withdrawal,
evidence with an IP address) for a fixed time with N concurrent connections. Every request is
a full write: token check, client reload, customer row lock, event insert, projection upsert,
ES256-signed receipt, commit. Afterwards it checks that the ledger holds exactly one event per
2xx answer and that ``vault consent rebuild --check`` finds the projection equal to the ledger.

The load driver is wrk (same tool as bench/read.py; C, so it leaves the CPU to the server) or,
with ``--driver httpx``, Python threads with httpx (costs the server CPU on small machines).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import machine, scratch_database
from bench.load import cpu_seconds, free_port, server

PURPOSES = ["personalised_offers", "push_notifications", "third_party_ads"]

LUA = r"""
local ids = {}
local n = 0
local purposes = {"personalised_offers", "push_notifications", "third_party_ads"}
local statuses = {"granted", "withdrawn"}
local counter = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; ids[n] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  counter = counter + 1
  local body = '{"purpose":"' .. purposes[math.random(3)] .. '","status":"' ..
    statuses[math.random(2)] .. '","channel":"web","method":"checkbox",' ..
    '"evidence":{"ip":"203.0.113.' .. math.random(254) .. '","user_agent":"bench"}}'
  local headers = {["Authorization"] = "Bearer " .. args_token,
                   ["Content-Type"] = "application/json"}
  if args_idem then
    headers["Idempotency-Key"] = "bench-" .. tostring({}):sub(8) .. "-" .. counter
  end
  return wrk.format("POST", "/v1/customers/" .. ids[math.random(n)] .. "/consents", headers, body)
end
"""


def _vault(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "vault.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _setup(base: str, env: dict[str, str], customers: int) -> tuple[str, list[str]]:
    creds = json.loads(
        _vault(
            env,
            "clients",
            "create",
            "--name",
            "consent bench",
            "--scopes",
            "consent:write customers:write",
            "--json",
        )
    )
    r = httpx.post(
        f"{base}/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    r.raise_for_status()
    token = r.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
        for i in range(customers):
            r = c.post("/v1/customers", json={"attributes": {"email": f"b{i}@example.de"}})
            r.raise_for_status()
            ids.append(r.json()["id"])
    return token, ids


def _wrk(base: str, token: str, ids: list[str], seconds: int, connections: int, idem: bool):
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk); or use --driver httpx")
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        script = Path(tmp) / "write.lua"
        script.write_text(
            f'args_token = "{token}"\nargs_idem = {"true" if idem else "false"}\n' + LUA
        )
        out = subprocess.run(
            [
                *("wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"),
                *("-s", str(script), base, "--", str(ids_file)),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    ok = total - (int(non2xx.group(1)) if non2xx else 0)
    return {
        "ok": ok,
        "failed": total - ok,
        "writes_per_s": rps,
        "p50": p50,
        "p99": p99,
        "socket_errors": errors.group(0) if errors else "",
    }


def _httpx(base: str, token: str, ids: list[str], seconds: int, connections: int, idem: bool):
    stop = time.monotonic() + seconds
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        ok = failed = 0
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            i = 0
            while time.monotonic() < stop:
                i += 1
                headers = {"Idempotency-Key": f"bench-{n}-{i}"} if idem else {}
                r = c.post(
                    f"/v1/customers/{rng.choice(ids)}/consents",
                    json={
                        "purpose": rng.choice(PURPOSES),
                        "status": rng.choice(["granted", "withdrawn"]),
                        "channel": "web",
                        "method": "checkbox",
                        "evidence": {
                            "ip": f"203.0.113.{rng.randint(1, 254)}",
                            "user_agent": "bench",
                        },
                    },
                    headers=headers,
                )
                if r.status_code == 201:
                    ok += 1
                else:
                    failed += 1
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {**counts, "writes_per_s": counts["ok"] / elapsed, "p50": "-", "p99": "-"}


def _ledger_count(url: str) -> int:
    from sqlalchemy import func, select

    from vault.consent.models import ConsentEvent
    from vault.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(ConsentEvent)).scalar_one()
    finally:
        engine.dispose()


def run(
    customers: int,
    seconds: int,
    connections: int,
    driver: str,
    idem: bool,
    database_url: str | None = None,
) -> dict:
    with (
        scratch_database(database_url) as pg,
        tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp,
    ):
        url = pg or f"sqlite:///{Path(tmp) / 'vault.db'}"
        env = {"VAULT_DATA_DIR": tmp, "VAULT_DATABASE_URL": url}
        if pg:  # `vault serve` migrates only the embedded default
            _vault(env, "db", "upgrade")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "vault.cli", "serve", "--port", str(port), "--workers", "1"]
        with server(cmd, f"{base}/healthz", env=env, log=Path(tmp) / "serve.log") as proc:
            token, ids = _setup(base, env, customers)
            drive = _wrk if driver == "wrk" else _httpx
            drive(base, token, ids, 2, connections, idem)  # warm-up
            before = _ledger_count(url)
            cpu0 = cpu_seconds(proc.pid)
            result = drive(base, token, ids, seconds, connections, idem)
            cpu = cpu_seconds(proc.pid) - cpu0
            written = _ledger_count(url) - before
        check = subprocess.run(
            [sys.executable, "-m", "vault.cli", "consent", "rebuild", "--check"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        result.update(
            server_cpu_ms_per_write=cpu * 1000 / max(written, 1),
            ledger_events=written,
            rebuild_check=(check.stdout + check.stderr).strip().splitlines()[-1],
            rebuild_ok=check.returncode == 0,
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--driver", choices=["wrk", "httpx"], default="wrk")
    p.add_argument("--idempotency", action="store_true", help="send an Idempotency-Key each")
    p.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (a scratch database is made)"
    )
    a = p.parse_args()
    r = run(a.customers, a.seconds, a.connections, a.driver, a.idempotency, a.database_url)
    db = "PostgreSQL" if a.database_url else "SQLite"
    print(
        f"machine: {machine()}; {db}; one uvicorn worker; driver {a.driver}, "
        f"{a.connections} connections, {a.seconds}s; {a.customers:,} customers"
        + ("; with Idempotency-Key" if a.idempotency else "")
    )
    print(
        f"consent writes: {r['writes_per_s']:,.0f}/s (goal >= 1,000/s), p50 {r['p50']}, "
        f"p99 {r['p99']}; {r['ok']:,} ok, {r['failed']:,} failed"
    )
    print(
        f"server CPU per write: {r['server_cpu_ms_per_write']:.2f} ms "
        f"(= {1000 / r['server_cpu_ms_per_write']:,.0f} writes/s per fully used core)"
    )
    print(f"ledger events written: {r['ledger_events']:,}; {r['rebuild_check']}")
    # requests in flight when warm-up and run stop still land: up to one per connection each
    if (
        r["failed"]
        or not r["rebuild_ok"]
        or not 0 <= r["ledger_events"] - r["ok"] <= 2 * a.connections
    ):
        sys.exit("consistency check failed")


if __name__ == "__main__":
    main()
