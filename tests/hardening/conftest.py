"""Fixtures of the limits tests: a fake clock for the limiter, apps built with other settings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import limits.storage.memory
import pytest
from fastapi.testclient import TestClient

from vault.app import create_app
from vault.runtime import Runtime


class Clock:
    """Stands in for the time module of the in-memory limits storage and for the limiter."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(limits.storage.memory, "time", c)
    return c


@pytest.fixture
def built(settings) -> Iterator:
    """``built(client_addr=..., **settings)`` -> (runtime, TestClient) of an app so configured."""
    made: list[tuple[Runtime, TestClient]] = []

    def make(client_addr: tuple[str, int] = ("198.51.100.7", 40000), **updates: object):
        rt = Runtime.build(settings.model_copy(update=updates))
        tc = TestClient(create_app(rt), raise_server_exceptions=False, client=client_addr)
        tc.__enter__()
        made.append((rt, tc))
        return rt, tc

    yield make
    for rt, tc in made:
        tc.__exit__(None, None, None)
        rt.engine.dispose()


@pytest.fixture
def limited(built, clock):
    """``limited(**rate_limit_settings)`` -> (runtime, TestClient) with tight limits."""

    def make(client_addr: tuple[str, int] = ("198.51.100.7", 40000), **overrides: str):
        rt, tc = built(client_addr, **{f"rate_limit_{k}": v for k, v in overrides.items()})
        rt.limiter.clock = clock.time
        return rt, tc

    return make
