"""Packaging beyond pyproject.toml: the wheel carries the Alembic migrations and the example
policies, which live at the top of the repository (``migrations/``, ``policies/``), as package
data under ``vault/_shipped/``. ``vault.shipped()`` finds them there in an installed wheel and
at the top of the checkout in an editable install."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("migrations", "policies")


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        for name in SHIPPED:
            target = Path(self.build_lib) / "vault" / "_shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                HERE / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildPyWithShipped})
