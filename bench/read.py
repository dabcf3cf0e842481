"""Consent-gated single read vs a bare FastAPI endpoint, and the audience export.

    python -m bench.read [--customers 10000] [--audience 200000] [--seconds 10]
                         [--key-provider file|pkcs11] [--preferences]

``--preferences``: the export customers get preferences too (every one a frequency and a topic
switched off, every second one a contact last quarter, every tenth one the exported topic off),
and the export asks ``contact_channel=email&topic=weekly_offers``, so the audience query and
the contact decision judge every row (issue 18: measured next to the run without).

Both servers run as one uvicorn worker on loopback and are loaded by the same tool (wrk,
16 connections, 1 thread) in the same run; the vault endpoint is
``GET /v1/customers/{random id}/data?purpose=personalised_offers`` for customers with a current
grant, so every request verifies the token, loads the client, the customer and the consent
state, decides, decrypts, reduces and commits an audit event.

``--key-provider pkcs11`` keeps the KEKs in a SoftHSM2 token made in the temp dir (Debian's
``softhsm2``): every read and every exported customer has its DEK unwrapped by the token.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert
from sqlmodel import Session

from bench.common import machine, scratch_database
from bench.load import bare_baseline, cpu_seconds, free_port, server, wrk
from bench.seed import seed
from vault.auth import service as auth_service
from vault.config import Settings
from vault.db import upgrade, utcnow
from vault.preferences.models import Contact, PreferenceChoice
from vault.runtime import Runtime

PURPOSE = "personalised_offers"


def _granted(i: int) -> dict:
    return {PURPOSE: ("granted", 1, 5)}


def _token(rt: Runtime) -> str:
    with Session(rt.engine, expire_on_commit=False) as s:
        client, _ = auth_service.create_client(
            session=s, policy=rt.policy, name="bench", scopes=["data:read"], purposes=[PURPOSE]
        )
        s.commit()
    tok, _ = auth_service.issue_access_token(
        client=client, signer=rt.signer, settings=rt.settings, requested_scope=None
    )
    return tok


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def softhsm_token(tmp: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token under ``tmp``; the VAULT_* variables that select it."""
    (tmp / "tokens").mkdir(parents=True)
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # this process and the server it starts
    pin = "bench-pin"
    init = ["--init-token", "--free", "--label", "bench", "--pin", pin, "--so-pin", pin]
    subprocess.run(
        ["softhsm2-util", *init],
        check=True,
        capture_output=True,
    )
    return {
        "VAULT_KEY_PROVIDER": "pkcs11",
        "VAULT_PKCS11_MODULE": SOFTHSM_MODULE,
        "VAULT_PKCS11_TOKEN_LABEL": "bench",
        "VAULT_PKCS11_PIN": pin,
    }


def seed_preferences(rt: Runtime, ids: list, batch: int = 5000) -> int:
    """Preferences and contacts for ``ids`` (see the module docstring); how many of them the
    export with ``topic=weekly_offers`` leaves out."""
    last_quarter = utcnow() - timedelta(days=120)
    excluded = 0
    for lo in range(0, len(ids), batch):
        choices, contacts = [], []
        for i, cid in enumerate(ids[lo : lo + batch], start=lo):
            row = {"customer_id": cid, "purpose": PURPOSE}
            choices.append({**row, "kind": "frequency", "name": "", "value": "monthly"})
            choices.append({**row, "kind": "topic", "name": "loyalty", "value": "off"})
            if i % 10 == 0:
                choices.append({**row, "kind": "topic", "name": "weekly_offers", "value": "off"})
                excluded += 1
            if i % 2 == 0:
                contacts.append(
                    {
                        **row,
                        "contact_channel": "email",
                        "sent_at": last_quarter,
                        "client_id": "bench",
                        "recorded_at": last_quarter,
                    }
                )
        with Session(rt.engine) as session:
            session.connection().execute(insert(PreferenceChoice.__table__), choices)
            if contacts:
                session.connection().execute(insert(Contact.__table__), contacts)
            session.commit()
    return excluded


def run(
    customers: int,
    audience: int,
    seconds: int,
    database_url: str | None = None,
    key_provider: str = "file",
    preferences: bool = False,
) -> dict[str, float]:
    with scratch_database(database_url) as url:
        return _run(customers, audience, seconds, url, key_provider, preferences)


def _run(
    customers: int,
    audience: int,
    seconds: int,
    database_url: str | None,
    key_provider: str,
    preferences: bool = False,
) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vault-bench-") as tmp:
        keys_env = softhsm_token(Path(tmp) / "hsm") if key_provider == "pkcs11" else {}
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=database_url,
            key_provider=key_provider,
            pkcs11_module=keys_env.get("VAULT_PKCS11_MODULE"),
            pkcs11_token_label=keys_env.get("VAULT_PKCS11_TOKEN_LABEL"),
            pkcs11_pin=keys_env.get("VAULT_PKCS11_PIN"),
            _env_file=None,
        )
        url = settings.resolved_database_url
        settings.data_dir.mkdir()
        upgrade(url)
        rt = Runtime.build(settings)
        ids = seed(rt, customers, states=_granted)
        token = _token(rt)
        env = {"VAULT_DATA_DIR": str(settings.data_dir), "VAULT_DATABASE_URL": url, **keys_env}

        vault_port = free_port()
        vault_cmd = [
            sys.executable,
            "-m",
            "vault.cli",
            "serve",
            "--port",
            str(vault_port),
            "--workers",
            "1",
        ]
        paths = [f"/v1/customers/{cid}/data?purpose={PURPOSE}" for cid in ids]
        bare, bare_cpu = bare_baseline(seconds)
        with server(
            vault_cmd,
            f"http://127.0.0.1:{vault_port}/healthz",
            env=env,
            log=Path(tmp) / "serve.log",
        ) as proc:
            base = f"http://127.0.0.1:{vault_port}"
            wrk(base, paths, token, seconds=2)
            cpu0 = cpu_seconds(proc.pid)
            gated = wrk(base, paths, token, seconds=seconds)
            gated_cpu = cpu_seconds(proc.pid) - cpu0
            if gated.non_2xx:
                raise SystemExit(f"{gated.non_2xx} non-2xx answers from the vault: check the setup")
            out.update(
                bare_rps=bare.requests_per_s,
                bare_p99_ms=bare.p99_ms,
                gated_rps=gated.requests_per_s,
                gated_p50_ms=gated.p50_ms,
                gated_p99_ms=gated.p99_ms,
                ratio=gated.requests_per_s / bare.requests_per_s,
                # server CPU per answered request (wrk counts them), in ms
                bare_cpu_ms=bare_cpu * 1000 / max(bare.requests, 1),
                gated_cpu_ms=gated_cpu * 1000 / max(gated.requests, 1),
            )
            if audience:
                seeded = seed(rt, audience, states=_granted, start=customers)
                allowed = customers + audience
                params = {"contact_channel": "email"}
                if preferences:
                    allowed -= seed_preferences(rt, seeded)
                    params["topic"] = "weekly_offers"
                t0 = time.perf_counter()
                cpu0 = cpu_seconds(proc.pid)
                n = 0
                with httpx.stream(
                    "GET",
                    f"{base}/v1/purposes/{PURPOSE}/audience",
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=600,
                ) as r:
                    for line in r.iter_lines():
                        n += bool(line)
                elapsed = time.perf_counter() - t0
                export_cpu = cpu_seconds(proc.pid) - cpu0
                if n != allowed:
                    raise SystemExit(f"audience export returned {n} of {allowed} customers")
                out.update(
                    audience_customers=n,
                    audience_per_s=n / elapsed,
                    audience_cpu_us=export_cpu * 1e6 / max(n, 1),
                )
        rt.engine.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument(
        "--audience",
        type=int,
        default=200_000,
        help="extra allowed customers for the export (0: skip)",
    )
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (a scratch database is made)"
    )
    p.add_argument(
        "--key-provider",
        choices=["file", "pkcs11"],
        default="file",
        help="where the KEKs live: the key file, or a SoftHSM2 token (PKCS#11)",
    )
    p.add_argument(
        "--preferences",
        action="store_true",
        help="export customers carry preferences and contacts (see above)",
    )
    a = p.parse_args()
    r = run(a.customers, a.audience, a.seconds, a.database_url, a.key_provider, a.preferences)
    db = "PostgreSQL" if a.database_url else "SQLite"
    print(
        f"machine: {machine()}; {db}; keys: {a.key_provider}; one uvicorn worker; "
        f"wrk -t1 -c16 -d{a.seconds}s"
    )
    print(
        f"bare FastAPI constant JSON : {r['bare_rps']:,.0f} req/s (p99 {r['bare_p99_ms']:.1f} ms)"
        f", server CPU {r['bare_cpu_ms']:.3f} ms/request"
    )
    print(
        f"consent-gated read         : {r['gated_rps']:,.0f} req/s, "
        f"p50 {r['gated_p50_ms']:.1f} ms, p99 {r['gated_p99_ms']:.1f} ms "
        f"({a.customers:,} customers), server CPU {r['gated_cpu_ms']:.3f} ms/read"
    )
    print(f"ratio gated/bare           : {r['ratio']:.2f}  (goal >= 0.50; p99 goal <= 25 ms)")
    if "audience_per_s" in r:
        print(
            f"audience export            : {r['audience_per_s']:,.0f} customers/s over "
            f"{r['audience_customers']:,} allowed customers (goal >= 100,000/s), "
            f"server CPU {r['audience_cpu_us']:.1f} us/customer"
        )


if __name__ == "__main__":
    main()
