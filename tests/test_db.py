"""vault.db.transaction: the one commit, audited refusals, and work that follows a commit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from vault.audit import record as audit_record
from vault.audit.models import AuditEvent
from vault.db import after_commit, transaction, transaction_group
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


# --- group commit (vault.db.transaction_group, Runtime.grouped) ---------------------------


def test_a_group_commits_every_call_once(runtime):
    outcomes = transaction_group(
        runtime.engine,
        [lambda s, a=a: _write(s, a) or a for a in ("client.created", "dsr.erasure")],
    )
    assert outcomes == [(True, "client.created"), (True, "dsr.erasure")]
    assert sorted(_actions(runtime)) == ["client.created", "dsr.erasure"]


def test_one_failing_call_does_not_drop_the_others_of_its_group(runtime):
    def refused(s):
        _write(s, "customer.created")  # the refused work: must not be committed
        raise Conflict("refused").audited(lambda s2: _write(s2, "dsr.restriction"))

    outcomes = transaction_group(
        runtime.engine,
        [lambda s: _write(s, "client.created"), refused, lambda s: _write(s, "dsr.erasure")],
    )
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], Conflict)
    # each call ran again alone: the refusal is audited as in transaction(), its work is gone
    assert sorted(_actions(runtime)) == ["client.created", "dsr.erasure", "dsr.restriction"]


def test_grouped_writes_of_concurrent_requests_all_commit(runtime):
    import asyncio

    async def many() -> list[str]:
        return await asyncio.gather(
            *(
                runtime.grouped(lambda session, i=i: _write(session) or str(i), key=i % 3)
                for i in range(40)
            )
        )

    assert sorted(asyncio.run(many()), key=int) == [str(i) for i in range(40)]
    assert _actions(runtime) == ["client.created"] * 40
