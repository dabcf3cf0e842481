"""Fast seeding for benchmarks and large tests: Core ``executemany`` of customers, encrypted
values, blind-index rows and consent-state rows.

It writes the consent *projection* directly (no ledger events, no receipts), which is what the
read path and the audience export read; use the API or ``vault demo`` for a full ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import orjson
from sqlalchemy import insert
from sqlmodel import Session

from vault.consent.models import ConsentState
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.db import utcnow
from vault.runtime import Runtime

# (status, version, days since the grant) per purpose, or nothing
StatePlan = Callable[[int], dict[str, tuple[str, int, int]]]


def profile(i: int) -> dict:
    return {
        "email": f"kunde{i}@tante-emma.example",
        "first_name": "Erika",
        "last_name": f"Mustermann{i}",
        "birth_date": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "postal_code": f"{10000 + i % 89999:05d}",
        "phone": f"+4930{1000000 + i}",
    }


def seed(
    rt: Runtime,
    n: int,
    *,
    states: StatePlan | None = None,
    status: Callable[[int], str] = lambda i: "active",
    objections: Callable[[int], str] = lambda i: "",
    batch: int = 5000,
    start: int = 0,
    now: datetime | None = None,
) -> list[UUID]:
    now = now or utcnow()
    ids: list[UUID] = []
    env = rt.envelope
    for lo in range(start, start + n, batch):
        customers, values, index, consent = [], [], [], []
        for i in range(lo, min(lo + batch, start + n)):
            cid = uuid4()
            ids.append(cid)
            key, wrapped, kek_id = env.new_data_key(cid)
            customers.append(
                {
                    "id": cid,
                    "status": status(i),
                    "dek_wrapped": wrapped,
                    "kek_id": kek_id,
                    "created_at": now,
                    "updated_at": now,
                    "objections": objections(i),
                }
            )
            for name, value in profile(i).items():
                values.append(
                    {
                        "customer_id": cid,
                        "attribute": name,
                        "ciphertext": key.encrypt(name, orjson.dumps(value)),
                        "updated_at": now,
                    }
                )
            index.append(
                {
                    "attribute": "email",
                    "digest": env.blind_index("email", profile(i)["email"]),
                    "customer_id": cid,
                }
            )
            for purpose, (st, version, age_days) in (states(i) if states else {}).items():
                at = now - timedelta(days=age_days)
                consent.append(
                    {
                        "customer_id": cid,
                        "purpose": purpose,
                        "status": st,
                        "version": version,
                        "granted_at": at if st in ("granted", "confirmed") else None,
                        "decided_at": at,
                        "event_id": uuid4(),
                        "updated_at": now,
                    }
                )
        with Session(rt.engine) as s:
            conn = s.connection()
            if conn.dialect.name == "sqlite":
                _sqlite_rows(conn, customers, values, index, consent)
            else:  # Core inserts: the ORM bulk path is several times slower
                conn.execute(insert(Customer.__table__), customers)
                conn.execute(insert(CustomerValue.__table__), values)
                conn.execute(insert(BlindIndex.__table__), index)
                if consent:
                    conn.execute(insert(ConsentState.__table__), consent)
            s.commit()
    if rt.engine.dialect.name == "postgresql":
        # what autovacuum would do on a live server a little later: without statistics the
        # planner sees the freshly filled tables as empty and picks scans for every query
        with rt.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return ids


def _t(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if value is not None else None


def _sqlite_rows(conn, customers, values, index, consent) -> None:
    """Driver-level executemany for SQLite (UUIDs as 32-hex text, times as naive UTC text —
    the storage formats SQLAlchemy's types use there)."""
    cur = conn.connection.driver_connection.cursor()
    cur.executemany(
        "INSERT INTO customer (id, status, dek_wrapped, kek_id, created_at, updated_at, "
        "objections) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                c["id"].hex,
                c["status"],
                c["dek_wrapped"],
                c["kek_id"],
                _t(c["created_at"]),
                _t(c["updated_at"]),
                c["objections"],
            )
            for c in customers
        ],
    )
    cur.executemany(
        "INSERT INTO customer_value (customer_id, attribute, ciphertext, updated_at) "
        "VALUES (?, ?, ?, ?)",
        [
            (v["customer_id"].hex, v["attribute"], v["ciphertext"], _t(v["updated_at"]))
            for v in values
        ],
    )
    cur.executemany(
        "INSERT INTO blind_index (attribute, digest, customer_id) VALUES (?, ?, ?)",
        [(i["attribute"], i["digest"], i["customer_id"].hex) for i in index],
    )
    if consent:
        cur.executemany(
            "INSERT INTO consent_state (customer_id, purpose, status, version, granted_at, "
            "decided_at, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c["customer_id"].hex,
                    c["purpose"],
                    c["status"],
                    c["version"],
                    _t(c["granted_at"]),
                    _t(c["decided_at"]),
                    c["event_id"].hex,
                    _t(c["updated_at"]),
                )
                for c in consent
            ],
        )
