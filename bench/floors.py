"""The floors of issue 20's goals: the CPU per operation of the work no optimisation removes.

    python -m bench.floors [--calls 3000] [--no-http]

Each figure is CPU time (``time.process_time``) per call, one thread, measured in-process on
the vault's own objects (a throwaway vault with the example policies):

- token: an access token's signature and claims checked (``Signer.verify``: python-jose,
  ES256), the bare ECDSA P-256 signature check inside it (pyca/cryptography), and the same
  token answered by the verified-token cache (``verified_claims``, what a read pays after the
  token's first use);
- receipt: one consent receipt signed (``Signer.sign_payload``);
- envelope: one customer's DEK unwrapped and six values decrypted (a read, an exported
  customer), and a new DEK wrapped and six values encrypted (an imported customer);
- validation: the six bench attributes through the policy's validators (``normalise``:
  ``email-validator``, ``phonenumbers``, dates, postal codes), and for comparison the whole
  parse step of one import line as the importer runs it today (``import_line_us``);
- HTTP: the bare ``async def`` baseline's server CPU per request under wrk (``--no-http``
  leaves it out), the part of every request the vault cannot go below.

From them it prints the ceiling each goal has on this machine with everything else (SQL,
SQLAlchemy, FastAPI, JSON, the audit row) at zero cost: if a ceiling is below the goal, the
goal is out of reach here, whatever the rest of the code does.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import orjson

from bench.common import machine, throwaway_runtime
from bench.importing import line
from bench.load import bare_baseline
from vault.auth import service as auth_service
from vault.auth.models import Client
from vault.customers import importer
from vault.db import utcnow
from vault.policy import values

SIX = {
    "email": "kunde1@tante-emma.example",
    "first_name": "Erika",
    "last_name": "Mustermann1",
    "birth_date": "1970-01-01",
    "postal_code": "10115",
    "phone": "+49301000001",
}


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Median of three runs of ``calls`` calls: CPU microseconds per call."""
    fn()  # warm
    runs = []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        runs.append((time.process_time() - t0) / calls * 1e6)
    return sorted(runs)[1]


def run(calls: int = 3000, http: bool = True) -> dict[str, float]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    out: dict[str, float] = {}
    with throwaway_runtime() as rt:
        signer, envelope, settings = rt.signer, rt.envelope, rt.settings
        client = Client(
            id="floors",
            name="floors",
            secret_hash="-",
            scopes="data:read",
            purposes="personalised_offers",
        )
        token, _ = auth_service.issue_access_token(
            client=client, signer=signer, settings=settings, requested_scope=None
        )
        out["token_verify_us"] = per_call_us(
            lambda: signer.verify(
                token,
                typ=auth_service.ACCESS_TOKEN_TYP,
                audience=settings.token_audience,
                issuer=settings.issuer,
            ),
            calls,
        )
        out["token_cached_us"] = per_call_us(
            lambda: auth_service.verified_claims(token=token, signer=signer, settings=settings),
            calls,
        )
        head, body, _sig = token.split(".")
        message = f"{head}.{body}".encode()
        der = signer._ec_key.sign(message, ec.ECDSA(hashes.SHA256()))
        public = signer._ec_key.public_key()
        out["ecdsa_verify_us"] = per_call_us(
            lambda: public.verify(der, message, ec.ECDSA(hashes.SHA256())), calls
        )
        out["receipt_sign_us"] = per_call_us(
            lambda: signer.sign_payload({"sub": str(uuid4()), "purpose": "x"}, typ="consent"),
            calls,
        )
        cid = uuid4()
        key, wrapped, kek_id = envelope.new_data_key(cid)
        blobs = {name: key.encrypt(name, orjson.dumps(v)) for name, v in SIX.items()}

        def open_customer() -> None:
            k = envelope.unwrap(cid, wrapped, kek_id)
            for name, blob in blobs.items():
                k.decrypt(name, blob)

        def seal_customer() -> None:
            k, _w, _k = envelope.new_data_key(cid)
            for name, v in SIX.items():
                k.encrypt(name, orjson.dumps(v))

        out["open_customer_us"] = per_call_us(open_customer, calls)
        out["seal_customer_us"] = per_call_us(seal_customer, calls)
        attrs = [(rt.policy.attributes[name], v) for name, v in SIX.items()]
        out["validate_six_us"] = per_call_us(
            lambda: [values.normalise(attr, v) for attr, v in attrs], calls
        )
        raw = line(1)
        now = utcnow()
        days = settings.consent_backdate_days
        out["import_line_us"] = per_call_us(
            lambda: importer._parse_line(raw, 1, rt.policy, envelope, now, days), calls
        )
    if http:
        bare, cpu = bare_baseline(5)
        out["bare_http_cpu_us"] = cpu / max(bare.requests, 1) * 1e6
    return out


def ceilings(f: dict[str, float]) -> list[tuple[str, str, str]]:
    """(goal, ceiling with everything but the floor at zero cost, the goal's figure)."""
    rows = []
    bare = f.get("bare_http_cpu_us")
    if bare:
        # the vault verifies a token's signature once and answers the same bytes from
        # vault.auth.service._verified until exp (the client is still loaded on every read)
        for label, token in (("signature every read", "token_verify_us"), ("token cache", "")):
            cost = f[token] if token else f["token_cached_us"]
            read = bare + cost + f["open_customer_us"]
            rows.append(
                (
                    f"1 gated read / bare baseline, {label}",
                    f"<= {bare / read:.2f} (bare {bare:.0f} + token {cost:.0f}"
                    f" + open {f['open_customer_us']:.0f} us)",
                    ">= 0.50 SQLite, >= 0.40 PostgreSQL",
                )
            )
    imp = f["validate_six_us"] + f["seal_customer_us"]
    rows.append(
        (
            "3 import, one core, receipts on first request",
            f"<= {1e6 / imp:,.0f}/s ({imp:.0f} us)",
            ">= 20,000/s SQLite, >= 10,000/s PostgreSQL",
        )
    )
    imp_signed = imp + 2 * f["receipt_sign_us"]
    rows.append(
        (
            "3 import, one core, receipts signed at import",
            f"<= {1e6 / imp_signed:,.0f}/s ({imp_signed:.0f} us)",
            "",
        )
    )
    rows.append(
        (
            "4 export, one core (DEK + 6 values only)",
            f"<= {1e6 / f['open_customer_us']:,.0f}/s ({f['open_customer_us']:.1f} us)",
            ">= 100,000/s",
        )
    )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--no-http", action="store_true", help="leave out the bare HTTP baseline")
    a = p.parse_args()
    print(f"machine: {machine()}; CPU per call, median of 3 x {a.calls} calls")
    f = run(a.calls, http=not a.no_http)
    for name, value in f.items():
        print(f"{name}: {value:,.1f}")
    print("ceilings (everything but the floor at zero cost):")
    for goal, ceiling, want in ceilings(f):
        print(f"  {goal:<48} {ceiling:<60} goal {want}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
