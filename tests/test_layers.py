"""The layering of ``vault/``, frozen (docs/architecture.md, "Rules").

Read with ``ast`` only, nothing is imported: each rule fails with the file and line that breaks it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import PROJECT_ROOT

VAULT = PROJECT_ROOT / "vault"
DOMAINS = (
    "auth",
    "customers",
    "consent",
    "access",
    "audit",
    "dsr",
    "events",
    "selfservice",
    "mail",
    "staff",
    "preferences",
)
# Shared modules and packages: every domain may use them, they use no domain.
SHARED = (
    "config",
    "datadir",
    "l10n",
    "errors",
    "db",
    "http",
    "provenance",
    "ratelimit",
    "runtime",
    "crypto",
    "policy",
)
# What a domain offers the others. Everything else (tables, row builders, pages) is its own.
PUBLIC = {
    "auth": {"deps", "scopes", "service"},
    "customers": {"service", "store", "schemas", "importer"},
    "consent": {
        "service",
        "store",
        "schemas",
        "errors",
        "rules",
        "reads",
        "evidence",
        "receipts",
        "expiry",
        "stats",
        "dossier",
    },
    "access": {"service", "store", "schemas"},
    "audit": {"record", "actions", "query", "verify", "schemas", "errors"},
    "dsr": {"requests", "rights", "erasure", "export", "schemas", "errors", "notes"},
    "events": {"outbox", "schemas", "errors", "health"},
    # i18n: language negotiation and formatting, shared with the staff console's pages
    # links: the link mail an app or staff asks for (the counter's "send the link")
    # summary: the plain-words sentence of a purpose's preferences (the counter's card too)
    "selfservice": {"sessions", "schemas", "errors", "dossier", "i18n", "links", "summary"},
    "mail": {"outbox", "delivery", "receipts"},
    "staff": {"accounts", "errors"},
    "preferences": {"service", "store", "schemas", "errors", "stats"},
}
# Composition modules that assemble domains (and may import any of their modules).
ASSEMBLY = {"app", "backup", "cli", "ops", "demo", "openapi", "__init__"}


def _modules() -> Iterator[tuple[Path, tuple[str, ...], ast.Module]]:
    for path in sorted(VAULT.rglob("*.py")):
        parts = path.relative_to(VAULT).with_suffix("").parts
        yield path, parts, ast.parse(path.read_text(), str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"


def _vault_imports(tree: ast.Module) -> Iterator[tuple[ast.AST, tuple[str, ...]]]:
    """Every ``vault.*`` module a file imports, as its parts after ``vault``; names imported
    from a package count as modules of it (``from vault.consent import service``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vault."):
                    yield node, tuple(alias.name.split(".")[1:])
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module == "vault" or (node.module or "").startswith("vault."))
        ):
            base = tuple((node.module or "").split(".")[1:])
            if len(base) == 1 and base[0] in DOMAINS:
                for alias in node.names:
                    yield node, (*base, alias.name)
            else:
                yield node, base


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(n) for n in ast.walk(node))
    return ids


def test_shared_modules_import_no_domain() -> None:
    bad = [
        f"{_where(path, node)} imports vault.{'.'.join(target)}"
        for path, parts, tree in _modules()
        if parts[0] in SHARED
        for node, target in _vault_imports(tree)
        if target and target[0] in DOMAINS
    ]
    assert not bad, "shared modules must not know the domains:\n" + "\n".join(bad)


def test_domains_use_each_other_only_through_their_public_modules() -> None:
    bad = []
    for path, parts, tree in _modules():
        if parts[0] not in DOMAINS or parts[-1] == "cli":
            continue
        for node, target in _vault_imports(tree):
            if len(target) < 2 or target[0] not in DOMAINS or target[0] == parts[0]:
                continue
            if target[1] not in PUBLIC[target[0]]:
                bad.append(f"{_where(path, node)} imports vault.{'.'.join(target)}")
    assert not bad, "cross-domain imports of private modules:\n" + "\n".join(bad)


def test_no_function_level_imports_outside_cli_modules() -> None:
    bad = []
    for path, parts, tree in _modules():
        if parts[-1] in ("cli", "openapi"):
            continue
        guarded = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if id(inner) in guarded:
                    continue
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = (
                        [inner.module or ""]
                        if isinstance(inner, ast.ImportFrom)
                        else [a.name for a in inner.names]
                    )
                    if any(n == "vault" or n.startswith("vault.") for n in names):
                        bad.append(f"{_where(path, inner)} in {node.name}()")
    assert not bad, "imports inside functions hide cycles:\n" + "\n".join(bad)


def test_only_db_commits() -> None:
    bad = [
        _where(path, node)
        for path, parts, tree in _modules()
        if parts != ("db",)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]
    assert not bad, "commit only through vault.db.transaction():\n" + "\n".join(bad)


def test_only_the_app_imports_routes() -> None:
    bad = [
        f"{_where(path, node)} imports vault.{'.'.join(target)}"
        for path, parts, tree in _modules()
        if parts not in (("app",),)
        for node, target in _vault_imports(tree)
        if target and target[-1] == "routes" and target[:-1] != parts[:-1]
    ]
    assert not bad, "routes are assembled in vault/app.py only:\n" + "\n".join(bad)


def test_no_router_has_a_prefix() -> None:
    """Full paths in every decorator: grepping a path finds its route."""
    bad = [
        _where(path, node)
        for path, _parts, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func).endswith("APIRouter")
        and any(k.arg == "prefix" for k in node.keywords)
    ]
    assert not bad, "routers without prefix=:\n" + "\n".join(bad)


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_public_module_exists(domain: str) -> None:
    """The PUBLIC table above names real modules (a renamed module must be renamed here)."""
    missing = [m for m in PUBLIC[domain] if not (VAULT / domain / f"{m}.py").exists()]
    assert not missing, f"vault/{domain} has no {missing}"
