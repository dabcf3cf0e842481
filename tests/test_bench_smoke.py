"""The benchmark scripts keep working: each runs once at tiny sizes. No timing assertions —
figures come from the scripts themselves (BENCHMARKS.md), never from unit tests."""

import os
import shutil
import subprocess
import sys

import pytest

from bench.erasure import run
from vault import PROJECT_ROOT

IN_CI = os.environ.get("CI", "").lower() == "true"


def _run(*args: str, timeout: int = 240) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def _need_wrk() -> None:
    if shutil.which("wrk") is None:
        if IN_CI:
            pytest.fail("wrk is required in CI (.ci/run installs it with apt-get)")
        pytest.skip("wrk is not installed")


def test_crypto_bench_smoke():
    out = _run("bench.crypto", "--customers", "50")
    assert "customers_created_per_s" in out and "values_decrypted_per_s" in out


def test_audit_bench_smoke():
    out = _run("bench.audit", "--events", "2000")
    assert "verified_per_s" in out


def test_erasure_bench_runs():
    result = run(50)
    assert result["customers"] == 50 and result["erased_per_s"] > 0


@pytest.mark.slow
def test_read_bench_smoke():
    _need_wrk()
    out = _run("bench.read", "--customers", "50", "--audience", "200", "--seconds", "1")
    assert "consent-gated read" in out and "audience export" in out and "ratio" in out


@pytest.mark.slow
def test_consent_bench_smoke():
    _need_wrk()
    out = _run("bench.consent", "--customers", "20", "--seconds", "1")
    assert "consent writes" in out


def test_import_bench_smoke():
    out = _run("bench.importing", "--customers", "40", "--chunk", "20")
    assert "imported_customers_per_s" in out and "receipts verified" in out


@pytest.mark.slow
def test_import_with_reads_bench_smoke():
    _need_wrk()
    out = _run("bench.importing", "--with-reads", "1", "--chunk", "20")
    assert "imported_customers_per_s" in out and "gated reads meanwhile" in out


@pytest.mark.slow
def test_scale_postgres_bench_smoke():
    """Goal 5's figures: the read served by one and by two `vault serve` processes on one
    PostgreSQL, each process's CPU per read, and the audit chain intact afterwards."""
    _need_wrk()
    url = os.environ.get("VAULT_TEST_POSTGRES_URL")
    if not url:
        if IN_CI:
            pytest.fail("CI=true but VAULT_TEST_POSTGRES_URL is not set")
        pytest.skip("VAULT_TEST_POSTGRES_URL is not set")
    out = _run(
        "bench.scale", "postgres", "--database-url", url, "--customers", "50", "--seconds", "1"
    )
    assert "one vault serve" in out and "ms/read per process" in out
    assert "non-2xx answers : 0" in out
    assert "audit verify afterwards (exit 0)" in out


def test_floors_bench_smoke():
    out = _run("bench.floors", "--calls", "20", "--no-http")
    for figure in ("token_verify_us", "ecdsa_verify_us", "open_customer_us", "import_line_us"):
        assert figure in out
    assert "3 import, one core" in out and "4 export, one core" in out
