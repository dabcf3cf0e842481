from __future__ import annotations

import pytest

from tests.events.receiver import Receiver
from vault.config import Settings

FAST = {
    "webhook_allowed_hosts": "127.0.0.1",
    "webhook_backoff_base": 0.05,
    "webhook_backoff_max": 0.2,
    "webhook_timeout": 2.0,
    "webhook_lease_seconds": 3.0,
    "webhook_max_attempts": 4,
    "worker_poll_interval": 0.05,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with 127.0.0.1 allowlisted (the test receiver) and fast retries."""
    return settings.model_copy(update=FAST)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
