import json
import time

import orjson
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.factories import auth_headers, create_customer
from vault.cli import app
from vault.consent import rebuild as consent_rebuild
from vault.consent import store as consent_store
from vault.consent.models import ConsentEvent, ConsentState
from vault.customers import service
from vault.customers.models import Customer
from vault.customers.routes import HTTP_CHUNK_LINES
from vault.db import utcnow


def ndjson(*docs) -> bytes:
    return b"".join((d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n" for d in docs)


GOOD = {
    "external_id": "LEGACY-1",
    "attributes": {
        "email": "Import.One@Example.de",
        "first_name": "Ida",
        "last_name": "Import",
        "birth_date": "1970-01-02",
        "postal_code": "50667",
        "phone": "0221 1234567",
    },
    "consents": [
        {
            "purpose": "personalised_offers",
            "status": "granted",
            "channel": "store",
            "occurred_at": "2026-01-05T10:00:00+00:00",
            "late_import": True,  # collected long before the import
            "method": "paper_form",
        },
        {
            "purpose": "newsletter",
            "status": "confirmed",
            "channel": "email",
            "occurred_at": "2026-01-06T10:00:00+00:00",
            "late_import": True,
            "method": "legacy_double_opt_in",
        },
    ],
}


@pytest.fixture
def importer_headers(session, runtime):
    return auth_headers(session, runtime, "customers:write", "consent:write")


def _post(client, headers, body):
    return client.post(
        "/v1/customers/import",
        content=body,
        headers={**headers, "content-type": "application/x-ndjson"},
    )


def test_import_keeps_good_lines_and_reports_bad_ones(client, session, runtime, importer_headers):
    create_customer(session, runtime, email="taken@example.de")
    body = ndjson(
        GOOD,
        {"attributes": {"email": "not-an-email"}},
        b"{broken json",
        {"attributes": {"shoe_size": 44}},
        {"attributes": {"email": "TAKEN@example.de"}},
        {"attributes": {"email": "import.one@example.de"}},  # duplicate of line 1
        {
            "attributes": {"email": "two@example.de"},
            "consents": [{"purpose": "order_fulfilment", "status": "granted"}],
        },
        {
            "attributes": {"email": "three@example.de"},
            "consents": [
                {
                    "purpose": "newsletter",
                    "status": "granted",
                    "occurred_at": "2099-01-01T00:00:00+00:00",
                }
            ],
        },
        {"attributes": {"email": "four@example.de", "city": "Köln"}},
    )
    r = _post(client, importer_headers, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["received"] == 9 and report["created"] == 2 and report["rejected"] == 7
    assert report["consents"] == 2
    codes = {e["line"]: e["error"] for e in report["errors"]}
    assert codes == {
        2: "invalid_attribute_value",
        3: "invalid_json",
        4: "unknown_attribute",
        5: "duplicate_value",
        6: "duplicate_value",
        7: "consent_not_applicable",
        8: "occurred_at_in_future",
    }
    assert "not-an-email" not in r.text and "taken@" not in r.text.lower()
    # the imported customer is complete: values, lookup, consents with receipts, audit
    kw = {"session": session, "envelope": runtime.envelope, "policy": runtime.policy}
    cid = service.lookup(**kw, attribute="external_id", value="LEGACY-1")
    assert service.lookup(**kw, attribute="email", value="import.one@example.de") == cid
    values = service.decrypt_values(
        session=session, envelope=runtime.envelope, customer=session.get(Customer, cid)
    )
    assert values["phone"] == "+492211234567" and values["first_name"] == "Ida"
    states = consent_store.effective_states(
        session=session, policy=runtime.policy, customer_id=cid, now=utcnow()
    )
    assert states["newsletter"].status == "granted"  # confirmed double opt-in counts
    events = (
        session.execute(select(ConsentEvent).where(ConsentEvent.customer_id == cid)).scalars().all()
    )
    assert {e.method for e in events} == {"paper_form", "legacy_double_opt_in"}
    assert all(e.receipt.count(".") == 2 for e in events)
    session.rollback()
    rebuild = consent_rebuild.rebuild(session=session, fix=False)
    assert not rebuild.differences
    session.rollback()


def test_imported_customer_is_readable_for_its_purpose(client, session, runtime, importer_headers):
    assert _post(client, importer_headers, ndjson(GOOD)).json()["created"] == 1
    reader = auth_headers(session, runtime, "data:read", purposes=["personalised_offers"])
    cid = service.lookup(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attribute="external_id",
        value="LEGACY-1",
    )
    session.rollback()
    r = client.get(
        f"/v1/customers/{cid}/data", params={"purpose": "personalised_offers"}, headers=reader
    )
    assert r.status_code == 200 and r.json()["attributes"]["birth_date"] == "1970"


def test_import_needs_scopes(client, session, runtime):
    assert _post(client, {}, ndjson(GOOD)).status_code == 401
    wrong = auth_headers(session, runtime, "consent:write")
    assert _post(client, wrong, ndjson(GOOD)).status_code == 403
    no_consent = auth_headers(session, runtime, "customers:write")
    report = _post(client, no_consent, ndjson(GOOD, {"attributes": {"city": "Ulm"}})).json()
    assert report["created"] == 1 and report["errors"][0]["error"] == "insufficient_scope"


def test_import_limits(client, session, runtime, importer_headers):
    long_line = orjson.dumps({"attributes": {"city": "x" * 70_000}})
    report = _post(client, importer_headers, ndjson(long_line)).json()
    assert report["errors"][0]["error"] == "line_too_long"
    # lines that are quick to refuse: the chunks before the limit are processed (and kept)
    too_many = b"[]\n" * (runtime.settings.max_import_lines + 1)
    r = _post(client, importer_headers, too_many)
    assert r.status_code == 422 and r.json()["error"] == "too_many_lines"


def test_cli_import_with_error_report(tmp_path, settings, runtime, session):
    path = tmp_path / "customers.ndjson"
    path.write_bytes(
        ndjson(GOOD, {"attributes": {"email": "nope"}}, {"attributes": {"city": "Ulm"}})
    )
    errors = tmp_path / "errors.ndjson"
    env = {
        "VAULT_DATA_DIR": str(settings.data_dir),
        "VAULT_DATABASE_URL": settings.resolved_database_url,
    }
    result = CliRunner().invoke(app, ["import", str(path), "--errors-file", str(errors)], env=env)
    assert result.exit_code == 1  # some lines were rejected
    assert "created 2 customers with 2 consent events, rejected 1" in result.output
    (entry,) = [json.loads(x) for x in errors.read_text().splitlines()]
    assert entry == {
        "line": 2,
        "error": "invalid_attribute_value",
        "detail": "Attribute 'email': not a valid e-mail address.",
        "attribute": "email",
    }
    assert session.execute(select(func.count()).select_from(Customer)).scalar_one() == 2
    assert session.execute(select(func.count()).select_from(ConsentState)).scalar_one() == 2


# --- issue 17: the import streams, commits per chunk, one per client --------------------------


def _split(data: bytes, *, pieces: int, max_lines: int = 1000, chunk_lines: int = 2):
    from vault.customers.importer import LineSplitter

    splitter = LineSplitter(max_lines=max_lines, chunk_lines=chunk_lines)
    step = max(1, -(-len(data) // pieces))
    out = []
    for i in range(0, len(data), step):
        out.extend(splitter.feed(data[i : i + step]))
    out.extend(splitter.finish())
    return out, splitter


@pytest.mark.parametrize("pieces", [1, 3, 7, 1000])
def test_lines_are_cut_as_they_arrive_wherever_the_pieces_end(pieces):
    data = b'{"a": 1}\r\n\n{"b": 2}\n   \n{"c": 3}\n{"d": 4}'
    chunks, splitter = _split(data, pieces=pieces)
    # blank lines count for the numbers but are not handed on; \r\n and a last line without \n
    assert chunks == [
        [(1, b'{"a": 1}'), (3, b'{"b": 2}')],
        [(5, b'{"c": 3}'), (6, b'{"d": 4}')],
    ]
    assert splitter.lines == 6 == len(data.splitlines())


def test_an_overlong_line_is_not_buffered_and_comes_out_as_none():
    from vault.customers.importer import MAX_LINE_BYTES, LineSplitter

    splitter = LineSplitter(max_lines=10, chunk_lines=10)
    assert list(splitter.feed(b"{}\n" + b"x" * 1000)) == []
    for _ in range(200):  # 200 KiB of one line, in pieces
        assert list(splitter.feed(b"x" * 1024)) == []
        assert len(splitter._tail) <= MAX_LINE_BYTES + 1
    assert list(splitter.feed(b"\n{}\n")) == []
    assert list(splitter.finish()) == [[(1, b"{}"), (2, None), (3, b"{}")]]
    # exactly at the limit it is kept (and judged by the line's own parser)
    at_limit = b"y" * MAX_LINE_BYTES
    assert list(LineSplitter(max_lines=1).feed(at_limit + b"\n")) == []


def test_the_line_after_the_limit_raises_as_soon_as_it_starts():
    from vault.customers.importer import LineSplitter, TooManyLines

    splitter = LineSplitter(max_lines=3, chunk_lines=2)
    assert list(splitter.feed(b"{}\n{}\n")) == [[(1, b"{}"), (2, b"{}")]]
    assert list(splitter.feed(b"{}\n")) == []  # the third line: fine, trailing \n too
    with pytest.raises(TooManyLines):
        list(splitter.feed(b"{"))
    # as splitlines() counted: a blank third line is a line, a lone trailing \n is not
    ok = LineSplitter(max_lines=3)
    assert list(ok.feed(b"{}\n\n{}\n")) == [] and list(ok.finish()) == [[(1, b"{}"), (3, b"{}")]]


def _customers(session) -> int:
    session.rollback()
    return session.execute(select(func.count()).select_from(Customer)).scalar_one()


def _many(n: int, start: int = 0) -> bytes:
    return ndjson(
        *[{"attributes": {"email": f"viele{i}@example.de"}} for i in range(start, start + n)]
    )


def test_the_report_is_right_across_chunks(client, session, runtime, importer_headers):
    lines = [{"attributes": {"email": f"chunk{i}@example.de"}} for i in range(2500)]
    lines[10] = {"attributes": {"email": "nope"}}
    lines[1500] = {"attributes": {"email": "chunk0@example.de"}}  # taken by line 1, chunk 1
    lines[2400] = b"{broken"
    body = ndjson(*lines[:1200]) + b"\n\n" + ndjson(*lines[1200:])  # two blank lines
    r = _post(client, importer_headers, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["received"], report["created"], report["rejected"]) == (2500, 2497, 3)
    assert {e["line"]: e["error"] for e in report["errors"]} == {
        11: "invalid_attribute_value",
        1503: "duplicate_value",  # numbers count the blank lines
        2403: "invalid_json",
    }
    assert _customers(session) == 2497


def test_an_import_past_the_line_limit_keeps_the_chunks_it_committed(built, session):
    """Chunks (over HTTP: HTTP_CHUNK_LINES, 200 lines) commit on their own: the refusal keeps
    them, and says so."""
    kept = 2500 // HTTP_CHUNK_LINES * HTTP_CHUNK_LINES  # the complete chunks before the limit
    rt, tc = built(max_import_lines=2500)
    headers = {
        **auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    r = tc.post("/v1/customers/import", content=_many(2600), headers=headers)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "too_many_lines"
    assert body["detail"] == "At most 2500 lines per request."
    assert body["report"]["received"] == body["report"]["created"] == kept
    assert _customers(session) == kept
    # sent again whole: the stored lines are refused as duplicates, nothing twice
    r = tc.post("/v1/customers/import", content=_many(2500), headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["rejected"]) == (2500 - kept, kept)
    assert {e["error"] for e in r.json()["errors"]} == {"duplicate_value"}
    assert _customers(session) == 2500


def _asgi_post(app, path: str, headers: dict[str, str], pieces: list[bytes]):
    """A chunked request straight into the ASGI app, its body in these pieces (the test client
    would read a streamed body whole before the app sees it)."""
    import asyncio

    queue = list(pieces)
    sent: list[dict] = []

    async def receive():
        if not queue:
            await asyncio.sleep(3600)
        return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue)}

    async def send(message):
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"), *raw],
        "client": ("198.51.100.7", 40000),
        "server": ("testserver", 80),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, orjson.loads(body)


def test_a_body_past_the_cap_midway_keeps_the_committed_chunks_and_reports_them(built, session):
    line = b'{"attributes": {"last_name": "Gross"}}\n'
    rt, tc = built(max_import_bytes=1500 * len(line))
    headers = {
        **auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    # no Content-Length: the cap is met while the body streams, after the first chunk
    status, body = _asgi_post(tc.app, "/v1/customers/import", headers, [line * 100] * 20)
    assert status == 413, body
    assert body["error"] == "payload_too_large"
    kept = 1500 // HTTP_CHUNK_LINES * HTTP_CHUNK_LINES  # the complete chunks within the cap
    assert body["report"]["received"] == body["report"]["created"] == kept
    assert _customers(session) == kept


def test_a_second_import_of_the_same_client_is_409_while_one_runs(client, session, runtime):
    from tests.factories import create_client, token
    from vault.customers import importer

    c, _ = create_client(session, runtime, scopes=["customers:write"])
    headers = {"Authorization": f"Bearer {token(runtime, c)}"}
    other = auth_headers(session, runtime, "customers:write")
    body = ndjson({"attributes": {"last_name": "Parallel"}})
    with importer.one_import_per_client(c.id):
        r = _post(client, headers, body)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "import_in_progress"
        assert _customers(session) == 0
        assert _post(client, other, body).status_code == 200  # other clients go on
    assert _post(client, headers, body).status_code == 200  # the slot is free again
    assert _customers(session) == 2


def test_the_slot_is_given_back_when_an_import_fails(built, session):
    rt, tc = built(max_import_lines=1)
    headers = {
        **auth_headers(session, rt, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    assert tc.post("/v1/customers/import", content=b"{}\n{}\n", headers=headers).status_code == 422
    r = tc.post("/v1/customers/import", content=b'{"attributes": {}}\n', headers=headers)
    assert r.status_code == 200 and r.json()["created"] == 1


def test_the_slot_holds_across_threads():
    import threading

    from vault.customers import importer

    entered, results = threading.Event(), []

    def hold():
        with importer.one_import_per_client("cv_threads"):
            entered.set()
            release.wait(10)

    def second():
        try:
            with importer.one_import_per_client("cv_threads"):
                results.append("entered")
        except importer.ImportInProgress:
            results.append("409")

    release = threading.Event()
    t = threading.Thread(target=hold)
    t.start()
    assert entered.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    t2.join(10)
    release.set()
    t.join(10)
    assert results == ["409"]


def test_the_import_never_holds_the_body_as_a_list(client, session, runtime):
    """tracemalloc over one import of 100,000 short (rejected) lines: before, the route held the
    body and a list of every line (~5 MB here); now one chunk at a time."""
    import tracemalloc

    from vault.customers import importer

    headers = {
        **auth_headers(session, runtime, "customers:write"),
        "content-type": "application/x-ndjson",
    }
    lines = runtime.settings.max_import_lines
    assert lines == 100_000
    body = b"[]\n" * lines  # 300 KB; every line invalid_json, so the test stays quick
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        r = _post(client, headers, body)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert r.status_code == 200, r.text
    assert r.json()["received"] == r.json()["rejected"] == lines
    assert len(r.json()["errors"]) == importer.MAX_ERRORS_REPORTED
    # the test client's copy of the body, one chunk, the report: well under the list of lines
    assert peak < 2 * 1024 * 1024, peak


def test_a_unique_value_inserted_meanwhile_by_another_writer_is_a_duplicate_not_a_500(
    runtime, backend
):
    """PostgreSQL: chunk B checks the e-mail (free), chunk A inserts it and commits while B
    waits on the unique index: B's line is ``duplicate_value`` and the rest of B is stored."""
    import threading

    from vault.customers import importer as imp
    from vault.db import transaction
    from vault.provenance import CLI

    if backend != "postgres":
        pytest.skip("SQLite serialises writers: nothing can insert between check and insert")

    def chunk(*emails):
        lines = [
            (n, orjson.dumps({"attributes": {"email": e, "first_name": "X"}}))
            for n, e in enumerate(emails, 1)
        ]
        return imp.prepare_chunk(
            envelope=runtime.envelope,
            policy=runtime.policy,
            signer=runtime.signer,
            settings=runtime.settings,
            chunk=lines,
            by=CLI,
        )

    a, b = chunk("race@example.de"), chunk("race@example.de", "other@example.de")
    a_inserted, b_report = threading.Event(), imp.ImportReport()

    def writer_a():
        with transaction(runtime.engine) as s:
            imp.store_chunk(session=s, prepared=a, report=imp.ImportReport())
            a_inserted.set()
            time.sleep(0.5)  # B checks now (sees nothing), then waits on the index

    t = threading.Thread(target=writer_a)
    t.start()
    assert a_inserted.wait(10)
    with transaction(runtime.engine) as s:
        imp.store_chunk(session=s, prepared=b, report=b_report)
    t.join()
    assert (b_report.created, b_report.rejected) == (1, 1)
    assert b_report.errors[0]["error"] == "duplicate_value"
