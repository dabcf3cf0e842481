"""HTTP load with wrk (Debian package `wrk`): requests/s and latency percentiles.

Both the baseline and the vault are measured with this same tool, in the same run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local paths = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  return wrk.format("GET", paths[math.random(n)], {["Authorization"] = "Bearer " .. args_token})
end
"""


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): on a shared machine the rate alone
    says little, the server's CPU cost per operation does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


@contextmanager
def server(
    cmd: list[str], health_url: str, env: dict[str, str] | None = None, log: Path | None = None
):
    """Start a server process, wait until it answers, stop it afterwards."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=out)
    try:
        wait_for(health_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def bare_baseline(seconds: int) -> tuple[LoadResult, float]:
    """``bench/bare_app.py`` (the ``async def`` baseline) as one uvicorn worker under wrk, after a
    2 s warm-up: the load result and the server's CPU seconds over the measured run."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port)]
    cmd += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with server(cmd, f"{base}/constant") as proc:
        wrk(base, ["/constant"], seconds=2)
        cpu0 = cpu_seconds(proc.pid)
        result = wrk(base, ["/constant"], seconds=seconds)
        return result, cpu_seconds(proc.pid) - cpu0


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    base_url: str,
    paths: list[str],
    token: str = "",
    *,
    seconds: int = 10,
    connections: int = 16,
    threads: int = 1,
) -> LoadResult:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        paths_file = Path(tmp) / "paths.txt"
        paths_file.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "load.lua"
        script.write_text(f'args_token = "{token}"\n' + LUA)
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                str(script),
                base_url,
                "--",
                str(paths_file),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))

    def parse(v: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", v)
        return _ms(m.group(1), m.group(2))

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return LoadResult(
        requests_per_s=rps,
        p50_ms=parse(lat["50"]),
        p99_ms=parse(lat["99"]),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        requests=int(total.group(1)) if total else 0,
    )
