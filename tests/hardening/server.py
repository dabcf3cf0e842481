"""The real server as a process, for the crash and concurrency suites.

``Server(settings, tmp_path).start()`` runs ``vault serve`` of the checkout under test (never an
installed console script) on a free port against the test's database and data directory, waits
for ``/healthz``, and can be SIGKILLed (whole process group, so ``--workers N`` children die too)
or stopped gracefully. Its output goes to a log file in ``tmp_path``, shown when start fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from vault import PROJECT_ROOT
from vault.config import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vault_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment of a ``vault`` process on the test's database and data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    values = {
        "database_url": settings.resolved_database_url,
        "data_dir": str(settings.data_dir),
        "public_url": settings.public_url,
        **overrides,
    }
    env.update({f"VAULT_{k.upper()}": str(v) for k, v in values.items()})
    # import the checkout under test, also from a clean clone in CI
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def vault_cli(settings: Settings, *args: str, timeout: float = 120, **overrides: Any):
    """Run ``vault <args>`` of this checkout; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-c", "from vault.cli import app; app()", *args],
        cwd=PROJECT_ROOT,
        env=vault_env(settings, **overrides),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Server:
    def __init__(self, settings: Settings, log_dir: Path, *, workers: int = 1, **env: Any):
        self.settings = settings
        self.workers = workers
        self.env = env
        self.log_dir = log_dir
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self.starts}.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 60) -> Server:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.port = free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from vault.cli import app; app()",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                cwd=PROJECT_ROOT,
                env=vault_env(self.settings, **self.env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL reaches the workers
            )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server not healthy within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the server and its worker processes, at once, without any shutdown."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """Graceful shutdown (SIGTERM, as an orchestrator would), SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
