"""Supply chain: the suite runs on the locked dependencies, and pip-audit finds no known
vulnerability with a fix available in them.

``requirements.lock`` pins the whole closure of ``consent-vault[test]`` (``pip-compile``, see
the README); the README's commands install with ``-c requirements.lock``. pip-audit asks PyPI for
each pinned release. Where its service cannot answer for a release (some networks, this
workplace's included, only reach PyPI's per-project document), the same advisory data is read
from that document, which carries the advisories of the project's latest release: exact for
every pin that is the latest release, and a pin behind it is listed as not audited. The test
fails when it could audit nothing at all, so it never passes on no data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
IN_CI = os.environ.get("CI", "").lower() == "true"
INSTALLER = {"pip", "setuptools"}  # pip-compile leaves the installer itself unpinned
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;#]+)")


def locked(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def closure(dist: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Names of the installed distributions ``dist[extras]`` needs, itself excluded."""
    seen: set[str] = set()
    todo = [(dist, extras)]
    while todo:
        name, wanted = todo.pop()
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, tuple(req.extras)))
    return seen


def test_the_suite_runs_on_the_locked_versions():
    pins = locked()
    assert len(pins) > 30
    needed = closure("consent-vault", ("test",)) - INSTALLER
    assert {"fastapi", "python-jose", "cryptography", "pip-audit"} <= needed
    unlocked = sorted(needed - pins.keys())
    assert not unlocked, f"needed but not in requirements.lock (re-run pip-compile): {unlocked}"
    drift = {
        name: (metadata.version(name), pins[name])
        for name in needed
        if metadata.version(name) != pins[name]
    }
    assert not drift, f"installed != locked (install with -c requirements.lock): {drift}"


# --- the audit ----------------------------------------------------------------------------


@dataclass
class Finding:
    package: str
    version: str
    id: str
    fix_versions: list[str]


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    audited: list[str] = field(default_factory=list)
    not_audited: dict[str, str] = field(default_factory=dict)

    @property
    def fixable(self) -> list[Finding]:
        return [f for f in self.findings if f.fix_versions]


def read_pip_audit(output: dict, pins: dict[str, str]) -> tuple[Report, list[str]]:
    """pip-audit's JSON as a report, and the packages it could not audit."""
    report, skipped = Report(), []
    for dep in output.get("dependencies", []):
        name = canonicalize_name(dep["name"])
        if "skip_reason" in dep:
            skipped.append(name)
            continue
        report.audited.append(name)
        for v in dep.get("vulns", []):
            report.findings.append(
                Finding(name, dep.get("version", pins.get(name, "?")), v["id"], v["fix_versions"])
            )
    return report, skipped


def read_project_document(report: Report, name: str, pinned: str, doc: dict) -> None:
    """Advisories from PyPI's per-project document (they are its latest release's)."""
    latest = doc["info"]["version"]
    if latest != pinned:
        report.not_audited[name] = f"pinned {pinned}, latest {latest}"
        return
    report.audited.append(name)
    for v in doc.get("vulnerabilities", []):
        if not v.get("withdrawn"):
            report.findings.append(Finding(name, pinned, v["id"], list(v.get("fixed_in") or [])))


def audit(lock: Path) -> Report:
    pins = locked(lock)
    run = subprocess.run(
        [
            sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
            "--format", "json", "--progress-spinner", "off", "--timeout", "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: vulnerabilities found
    report, skipped = read_pip_audit(json.loads(run.stdout), pins)
    if skipped:
        with httpx.Client(timeout=20) as http:
            for name in skipped:
                r = http.get(f"https://pypi.org/pypi/{name}/json")
                if r.status_code != 200:
                    report.not_audited[name] = f"PyPI answered {r.status_code}"
                    continue
                read_project_document(report, name, pins[name], r.json())
    return report


@pytest.mark.slow
def test_locked_dependencies_have_no_fixable_vulnerability():
    try:
        report = audit(LOCK)
    except httpx.TransportError as exc:
        if IN_CI:
            raise
        pytest.skip(f"PyPI is not reachable: {exc}")
    print(
        f"\npip-audit: {len(report.audited)} audited, {len(report.not_audited)} not audited "
        f"{sorted(report.not_audited.items())}; known without a fix: "
        f"{[(f.package, f.id) for f in report.findings if not f.fix_versions]}"
    )
    assert report.audited, "no advisory data could be read for any locked package"
    assert not report.fixable, "known vulnerabilities with a fix available: " + ", ".join(
        f"{f.package} {f.version} {f.id} (fixed in {', '.join(f.fix_versions)})"
        for f in report.fixable
    )


def test_the_gate_fails_on_fixable_and_reports_unfixable():
    pins = {"jinja2": "3.1.2", "ecdsa": "0.19.1", "gone": "1.0"}
    output = {
        "dependencies": [
            {
                "name": "Jinja2",
                "version": "3.1.2",
                "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
            },
            {
                "name": "ecdsa",
                "version": "0.19.1",
                "vulns": [{"id": "GHSA-wj6h-64fc-37mp", "fix_versions": []}],
            },
            {"name": "gone", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    report, skipped = read_pip_audit(output, pins)
    assert skipped == ["gone"]
    assert [(f.package, f.id) for f in report.fixable] == [("jinja2", "GHSA-h5c8-rqwp-cp95")]
    assert len(report.findings) == 2

    doc = {
        "info": {"version": "2.0"},
        "vulnerabilities": [
            {"id": "PYSEC-1", "fixed_in": ["2.1"], "withdrawn": None},
            {"id": "PYSEC-2", "fixed_in": ["2.1"], "withdrawn": "2026-01-01T00:00:00"},
        ],
    }
    fallback = Report()
    read_project_document(fallback, "gone", "2.0", doc)
    assert [f.id for f in fallback.fixable] == ["PYSEC-1"]  # withdrawn advisories ignored
    behind = Report()
    read_project_document(behind, "gone", "1.0", doc)
    assert behind.audited == [] and behind.not_audited == {"gone": "pinned 1.0, latest 2.0"}
