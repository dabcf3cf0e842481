"""ruff check and ruff format --check are part of the test command, so CI enforces them."""

import shutil
import subprocess

import pytest

from vault import PROJECT_ROOT

TARGETS = ["."]  # the whole repository, docs' Python blocks included


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff(args):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install -c requirements.lock -e '.[test]'"
    result = subprocess.run(
        [ruff, *args, *TARGETS], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
