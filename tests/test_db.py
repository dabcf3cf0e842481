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


def test_the_rest_of_a_group_still_shares_one_commit_after_a_failing_call(runtime):
    from sqlalchemy import event

    commits = []
    event.listen(runtime.engine, "commit", lambda conn: commits.append(1))

    def refused(s):
        _write(s, "customer.created")
        raise Conflict("refused")

    calls = [lambda s: _write(s, "client.created") or "ok"] * 5
    outcomes = transaction_group(runtime.engine, [*calls[:2], refused, *calls[2:], refused])
    # the five good calls in one commit; each refused call ran alone (and rolled back)
    assert len(commits) == 1
    assert [ok for ok, _ in outcomes] == [True, True, False, True, True, True, False]
    assert _actions(runtime) == ["client.created"] * 5


def test_a_group_whose_calls_keep_failing_falls_back_to_running_each_alone(runtime):
    def refused(s):
        raise Conflict("refused")

    calls = [refused, refused, lambda s: _write(s, "client.created") or "ok", refused]
    outcomes = transaction_group(runtime.engine, calls, retries=1)
    assert [ok for ok, _ in outcomes] == [False, False, True, False]
    assert _actions(runtime) == ["client.created"]


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
