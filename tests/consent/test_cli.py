import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.factories import create_customer, record_consent
from vault.cli import app


@pytest.fixture
def env(settings):
    return {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }


def test_rebuild_check_detects_a_hand_edited_projection(env, session, runtime):
    customer = create_customer(session, runtime)
    record_consent(session, runtime, customer.id, "personalised_offers", "withdrawn")
    record_consent(session, runtime, customer.id, "third_party_ads", "granted")
    r = CliRunner().invoke(app, ["consent", "rebuild", "--check"], env=env)
    assert r.exit_code == 0, r.output
    assert "ok: projection matches the ledger: 2 events, 2 projection rows" in r.output

    session.execute(
        text("UPDATE consent_state SET status = 'granted' WHERE purpose = 'personalised_offers'")
    )
    session.commit()
    r = CliRunner().invoke(app, ["consent", "rebuild", "--check"], env=env)
    assert r.exit_code == 1
    assert f"{customer.id} personalised_offers: projection granted" in r.output
    assert "ledger withdrawn" in r.output and "1 differences" in r.output

    r = CliRunner().invoke(app, ["consent", "rebuild"], env=env)
    assert r.exit_code == 0 and "rewrote 1 rows" in r.output
    r = CliRunner().invoke(app, ["consent", "rebuild", "--check"], env=env)
    assert r.exit_code == 0, r.output
    status = session.execute(
        text("SELECT status FROM consent_state WHERE purpose = 'personalised_offers'")
    ).scalar_one()
    assert status == "withdrawn"
