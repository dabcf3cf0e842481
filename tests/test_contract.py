"""The committed API contract and the migrations must match the code."""

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from vault import PROJECT_ROOT
from vault.db import downgrade, load_models, make_engine, upgrade
from vault.openapi import generate


def test_committed_openapi_matches_the_app():
    committed = json.loads((PROJECT_ROOT / "openapi" / "openapi.json").read_text())
    assert committed == json.loads(generate()), "run 'vault openapi' and commit the result"


def test_every_operation_has_a_stable_id_and_documents_errors():
    doc = json.loads(generate())
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert not any("__" in i for i in ids), "operation ids must be set explicitly"


def test_migrations_match_models(db_url):
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, load_models())
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()


def test_migrations_downgrade_and_upgrade_cleanly(db_url):
    engine = make_engine(db_url)
    try:
        downgrade(db_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(db_url)
        assert {"customer", "customer_value", "blind_index", "client"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
