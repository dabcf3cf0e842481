"""The wheel is complete: a non-editable install runs without the source tree.

``pip wheel`` builds the package from a copy of the files an sdist holds; the wheel must carry
the Alembic migrations, the example policies, the page templates, catalogues and static files,
and the code unpacked from it alone (no checkout on the path, an empty working directory) must
find them: ``vault demo`` migrates a fresh database and loads the policies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vault import PROJECT_ROOT

pytestmark = pytest.mark.slow

SDIST_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SDIST_DIRS = ("vault", "migrations", "policies")


def _tree(root: Path, sub: str) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in (root / sub).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SDIST_FILES:
        shutil.copy2(PROJECT_ROOT / name, src / name)
    for name in SDIST_DIRS:
        shutil.copytree(
            PROJECT_ROOT / name,
            src / name,
            ignore=shutil.ignore_patterns("__pycache__", "_shipped"),
        )
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (built,) = out.glob("consent_vault-*.whl")
    return built


def test_the_wheel_carries_migrations_policies_and_page_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for sub in ("migrations", "policies"):
        expected = {f"vault/_shipped/{f}" for f in _tree(PROJECT_ROOT, sub)}
        assert expected and expected <= names, sorted(expected - names)
    assert any(n.startswith("vault/_shipped/migrations/versions/0001_") for n in names)
    data = {
        f for f in _tree(PROJECT_ROOT, "vault") if not f.endswith(".py") and "/_shipped/" not in f
    }
    assert data, "the package has templates, catalogues and static files"
    assert data <= names, sorted(data - names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "vault = vault.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_unpacked_wheel_runs_vault_demo_without_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"  # no ./policies here: the shipped examples must be found
    work.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "VAULT_DATA_DIR": str(work / "data"),
        "VAULT_PUBLIC_URL": "http://127.0.0.1:8000",
    }
    for name in ("VAULT_DATABASE_URL", "VAULT_POLICIES_DIR"):
        env.pop(name, None)
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import vault, vault.db, vault.config; "
            "print(vault.__file__); print(vault.db.MIGRATIONS_DIR); "
            "print(vault.config.Settings().resolved_policies_dir)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert [Path(line).is_relative_to(site) for line in where] == [True, True, True], where
    r = subprocess.run(
        [sys.executable, "-m", "vault.cli", "demo", "--customers", "4"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "created 4 customers" in r.stdout
    assert "/me/login/" in r.stdout
    assert (work / "data" / "vault.db").is_file()
