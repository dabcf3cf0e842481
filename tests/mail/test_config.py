"""Mail settings: the SMTP URL's forms, production's requirements, no password in errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vault.config import Settings, parse_smtp_url

PROD = {"environment": "production", "master_keys": "k1:" + "A" * 43 + "=", "_env_file": None}


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "user", "password"),
    [
        ("smtp://mail.example.com", "smtp", "mail.example.com", 25, None, None),
        (
            "smtp+starttls://u:pw9x@mail.example.com",
            "smtp+starttls",
            "mail.example.com",
            587,
            "u",
            "pw9x",
        ),
        ("smtps://u%40x.de:p%3A%2Fw@10.0.0.5:2465", "smtps", "10.0.0.5", 2465, "u@x.de", "p:/w"),
        ("SMTPS://MAIL.example.com/", "smtps", "mail.example.com", 465, None, None),
    ],
)
def test_smtp_url_forms(url, scheme, host, port, user, password):
    parsed = parse_smtp_url(url)
    assert (parsed.scheme, parsed.host, parsed.port) == (scheme, host, port)
    assert (parsed.username, parsed.password) == (user, password)
    if password:
        assert password not in repr(parsed) and "***" in repr(parsed)


@pytest.mark.parametrize(
    "url",
    [
        "http://u:topsecret@mail.example.com",
        "smtp://u:topsecret@",
        "smtp://u:topsecret@mail.example.com:99999",
        "smtp://u:topsecret@mail.example.com/path",
        "smtp://onlyuser@mail.example.com",
    ],
)
def test_a_bad_smtp_url_is_refused_without_echoing_it(url):
    with pytest.raises(ValidationError) as info:
        Settings(smtp_url=url, _env_file=None)
    assert "topsecret" not in str(info.value) and "onlyuser" not in str(info.value)
    assert "smtp_url" in str(info.value)


def test_production_needs_an_smtp_url_and_a_from():
    with pytest.raises(ValidationError, match="VAULT_SMTP_URL is required"):
        Settings(**PROD)
    with pytest.raises(ValidationError, match="VAULT_MAIL_FROM is required"):
        Settings(**PROD, smtp_url="smtps://mail.example.com")
    s = Settings(**PROD, smtp_url="smtps://u:p@mail.example.com", mail_from="a@example.de")
    assert s.smtp is not None and s.smtp.scheme == "smtps"


def test_production_refuses_a_password_over_plain_smtp_except_on_loopback():
    with pytest.raises(ValidationError, match="in clear") as info:
        Settings(**PROD, smtp_url="smtp://u:geheim@mail.example.com", mail_from="a@example.de")
    assert "geheim" not in str(info.value)
    Settings(**PROD, smtp_url="smtp://u:geheim@127.0.0.1:25", mail_from="a@example.de")
    Settings(**PROD, smtp_url="smtp://mail.example.com", mail_from="a@example.de")


def test_development_defaults_the_from_and_uses_the_mail_drop():
    s = Settings(_env_file=None)
    assert s.smtp is None and s.resolved_mail_from == "Consent Vault <consent-vault@localhost>"
    assert s.mail_delivered_by_server  # embedded default: vault serve sends mail
    assert not Settings(
        database_url="postgresql+psycopg://h/db", _env_file=None
    ).mail_delivered_by_server
    assert Settings(
        database_url="postgresql+psycopg://h/db", mail_in_server=True, _env_file=None
    ).mail_delivered_by_server


@pytest.mark.parametrize("value", ["no address", "a@b.de\nBcc: c@d.de", "Name <>"])
def test_mail_from_must_be_one_address(value):
    with pytest.raises(ValidationError):
        Settings(mail_from=value, _env_file=None)


def test_the_lease_must_outlast_two_smtp_timeouts():
    with pytest.raises(ValidationError, match="VAULT_MAIL_LEASE_SECONDS"):
        Settings(smtp_timeout=60, mail_lease_seconds=100, _env_file=None)
