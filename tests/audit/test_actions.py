"""AuditAction names every action the vault writes, and docs/audit.md lists exactly those."""

import ast
import re

from vault import PROJECT_ROOT
from vault.audit.actions import AuditAction
from vault.audit.record import _ACTION

DOC = PROJECT_ROOT / "docs" / "audit.md"


def _doc_actions() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## Actions", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z0-9_.]+)` \|", section, flags=re.MULTILINE)


def test_doc_table_lists_every_action_in_enum_order():
    assert _doc_actions() == [a.value for a in AuditAction]


def test_every_action_is_a_valid_unique_name():
    values = [a.value for a in AuditAction]
    assert len(values) == len(set(values))
    for a in AuditAction:
        assert _ACTION.fullmatch(a.value), a
        assert a.name == a.value.replace(".", "_").upper(), a


def _literal_actions():
    """String constants written as an audit action in vault/: ``action="x.y"``, ``"action": "x.y"``
    and the DSR helper's positional ``_audit(session, actor, "x.y", ...)``."""
    for path in sorted((PROJECT_ROOT / "vault").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "action":
                value = node.value
            elif isinstance(node, ast.Dict):
                value = next(
                    (
                        v
                        for k, v in zip(node.keys, node.values, strict=True)
                        if isinstance(k, ast.Constant) and k.value == "action"
                    ),
                    None,
                )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_audit"
                and len(node.args) >= 3
            ):
                value = node.args[2]
            else:
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield f"{path.relative_to(PROJECT_ROOT)}:{value.lineno}", value.value


def test_every_literal_action_in_the_code_is_an_enum_member():
    unknown = {where: name for where, name in _literal_actions() if name not in set(AuditAction)}
    assert not unknown
