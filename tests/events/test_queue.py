"""The delivery queue's timing: backoff with jitter and a cap, a lease that outlasts a request."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from vault.config import Settings
from vault.events import queue


def test_backoff_grows_with_jitter_and_a_cap():
    s = Settings(webhook_backoff_base=1, webhook_backoff_max=10, _env_file=None)
    rng = random.Random(1)
    delays = [queue.backoff(n, s, rng).total_seconds() for n in range(1, 8)]
    for n, d in enumerate(delays, 1):
        full = min(10, 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(delays) <= 10


def test_the_lease_must_outlast_a_request():
    with pytest.raises(ValidationError):
        Settings(webhook_timeout=30, webhook_lease_seconds=30, _env_file=None)
