"""vault.db.transaction: the one commit, audited refusals, and work that follows a commit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vault.audit import record as audit_record
from vault.audit.models import AuditEvent
from vault.db import after_commit, transaction
from vault.errors import Conflict
from vault.provenance import Caller


def _actions(runtime) -> list[str]:
    with transaction(runtime.engine) as s:
        return list(s.execute(select(AuditEvent.action)).scalars())


def _write(session, action: str = "client.created") -> None:
    audit_record.record(session=session, by=Caller("cli"), action=action)


def test_after_commit_runs_once_the_change_is_committed(runtime):
    seen: list[list[str]] = []
    with transaction(runtime.engine) as s:
        _write(s)
        after_commit(s, lambda: seen.append(_actions(runtime)))
        assert seen == []
    assert seen == [["client.created"]]  # the hook saw the committed row


def test_after_commit_does_not_run_when_the_transaction_rolls_back(runtime):
    seen: list[int] = []
    with pytest.raises(RuntimeError), transaction(runtime.engine) as s:
        _write(s)
        after_commit(s, lambda: seen.append(1))
        raise RuntimeError("boom")
    assert seen == [] and _actions(runtime) == []


def test_an_audited_refusal_rolls_back_and_keeps_its_audit_row(runtime):
    with pytest.raises(Conflict), transaction(runtime.engine) as s:
        _write(s, "customer.created")  # the refused work
        raise Conflict("refused").audited(lambda s2: _write(s2, "dsr.erasure"))
    assert _actions(runtime) == ["dsr.erasure"]
