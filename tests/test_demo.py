"""vault demo: the reads it prints work (allowed and denied) and so does its self-service link."""

import re

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from vault.cli import app


def test_demo_prints_working_allowed_and_denied_reads(settings, runtime, client):
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }
    result = CliRunner().invoke(app, ["demo", "--customers", "12"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    client_id = re.search(r"client_id:\s+(\S+)", out).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", out).group(1)
    urls = re.findall(r"'http://testserver(/v1/customers/[^']+)'", out)
    assert len(urls) == 2
    tok = client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {tok}"}
    allowed = client.get(urls[0], headers=headers)
    assert allowed.status_code == 200, allowed.text
    assert len(allowed.json()["attributes"]["birth_date"]) == 4  # reduced to the year
    denied = client.get(urls[1], headers=headers)
    assert denied.status_code == 403 and denied.json()["error"] == "consent_missing"
    again = CliRunner().invoke(app, ["demo", "--customers", "12"], env=env)
    assert again.exit_code == 0 and "created 0 customers" in again.output


def test_demo_prints_a_working_selfservice_link(settings, runtime, client):
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }
    result = CliRunner().invoke(app, ["demo", "--customers", "4"], env=env)
    assert result.exit_code == 0, result.output
    links = re.findall(r"^\s+http://testserver(/me/login/\S+)$", result.output, re.MULTILINE)
    assert len(links) == 1
    r = client.get(links[0], follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me"
    page = client.get("/me")
    assert page.status_code == 200
    assert "Hallo " in page.text  # the demo customer's first name, decrypted
    # once: another browser gets 410 (this one, signed in with it, goes back to /me)
    assert TestClient(client.app).get(links[0], follow_redirects=False).status_code == 410


def test_demo_reuses_its_client_with_a_fresh_secret(settings, runtime, client, session):
    from sqlmodel import select

    from vault.auth.models import Client
    from vault.demo import DEMO_CLIENT_NAME

    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
        "VAULT_PUBLIC_URL": settings.public_url,
    }
    runs = [CliRunner().invoke(app, ["demo", "--customers", "4"], env=env) for _ in range(3)]
    assert all(r.exit_code == 0 for r in runs), runs[-1].output
    ids = {re.search(r"client_id:\s+(\S+)", r.output).group(1) for r in runs}
    secrets = [re.search(r"client_secret:\s+(\S+)", r.output).group(1) for r in runs]
    assert len(ids) == 1 and len(set(secrets)) == 3
    rows = session.exec(select(Client).where(Client.name == DEMO_CLIENT_NAME)).all()
    assert [c.id for c in rows] == list(ids)

    def token_status(secret: str) -> int:
        form = {"grant_type": "client_credentials", "client_id": next(iter(ids))}
        return client.post("/v1/oauth/token", data={**form, "client_secret": secret}).status_code

    assert [token_status(s) for s in secrets] == [401, 401, 200]  # only the last one printed
