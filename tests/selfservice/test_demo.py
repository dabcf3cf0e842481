import re

from typer.testing import CliRunner

from vault.cli import app


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
    assert client.get(links[0], follow_redirects=False).status_code == 410
