"""The hash chain is the documented one."""

import hashlib

from sqlalchemy import text

from tests.audit.helpers import seal, stored_hash, write
from vault.audit import chain


def test_hash_is_the_documented_chain(runtime):
    write(runtime, 2)
    seal(runtime)
    with runtime.engine.connect() as conn:
        bodies = (
            conn.execute(
                text(
                    f"SELECT {chain.body_sql(conn.dialect.name, with_seq=True)} "
                    "FROM audit_event ORDER BY seq"
                )
            )
            .scalars()
            .all()
        )
        h1 = hashlib.sha256(chain.GENESIS + bodies[0].encode()).digest()
        h2 = hashlib.sha256(h1 + bodies[1].encode()).digest()
        assert (stored_hash(conn, 1), stored_hash(conn, 2)) == (h1, h2)
    assert bodies[0].split(chain.SEP)[:6] == [
        "1",
        bodies[0].split(chain.SEP)[1],
        "client",
        "cv_test",
        "data.read",
        "allowed",
    ]
