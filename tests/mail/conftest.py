from __future__ import annotations

import pytest

from tests.mail.smtpd import SmtpServer, self_signed
from vault.config import Settings

FAST = {
    "mail_backoff_base": 0.05,
    "mail_backoff_max": 0.2,
    "mail_max_attempts": 3,
    "mail_poll_interval": 0.05,
    "smtp_timeout": 5.0,
    "mail_lease_seconds": 30.0,
    "mail_from": "Tante Emma Online <service@tante-emma.example>",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with fast mail retries (and no SMTP: the mail drop)."""
    return settings.model_copy(update=FAST)


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtpd():
    servers: list[SmtpServer] = []

    def start(**kwargs) -> SmtpServer:
        server = SmtpServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
