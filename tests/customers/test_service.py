import threading

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from tests.factories import create_customer
from vault.crypto.keys import KEY_FILE_NAME, LocalKeyFile
from vault.customers import service
from vault.customers.models import Customer, CustomerValue
from vault.errors import Conflict, CustomerErased, CustomerNotFound, DecryptionError
from vault.provenance import Caller
from vault.runtime import Runtime


def test_no_plaintext_in_the_database(runtime, session, backend, settings):
    email, surname = "plaintext.probe@example.de", "Schnabelhuber"
    create_customer(session, runtime, email=email, last_name=surname, phone="+49 30 1234567")
    if backend == "sqlite":
        runtime.engine.dispose()  # checkpoint the WAL so the main file holds everything
        raw = b""
        path = settings.resolved_database_url.removeprefix("sqlite:///")
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as fh:
                    raw += fh.read()
            except FileNotFoundError:
                pass
        assert len(raw) > 10_000
    else:
        with runtime.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT string_agg(t::text, '|') FROM (SELECT * FROM customer_value) t "
                    "UNION ALL SELECT string_agg(t::text, '|') FROM (SELECT * FROM blind_index) t "
                    "UNION ALL SELECT string_agg(t::text, '|') FROM (SELECT * FROM customer) t"
                )
            ).scalars()
            raw = "|".join(r or "" for r in rows).encode()
        assert raw
    for needle in (email, surname, "1234567"):
        assert needle.encode() not in raw
        assert needle.encode().hex().encode() not in raw  # bytea renders as hex on PostgreSQL


def test_values_decrypt_to_normalised_form(runtime, session):
    c = create_customer(
        session, runtime, email=" Mixed.Case@Example.DE ", phone="030 1234567", country="de"
    )
    values = service.decrypt_values(session=session, envelope=runtime.envelope, customer=c)
    assert values["email"] == "mixed.case@example.de"
    assert values["phone"] == "+49301234567"
    assert values["country"] == "DE"


@pytest.mark.parametrize("target", ["other_customer", "other_attribute"])
def test_copied_ciphertext_fails_integrity_check(runtime, session, target):
    a = create_customer(session, runtime, last_name="Alpha")
    b = create_customer(session, runtime, last_name="Beta")
    blob = session.get(CustomerValue, (a.id, "last_name")).ciphertext
    if target == "other_customer":
        row = session.get(CustomerValue, (b.id, "last_name"))
    else:
        row = session.get(CustomerValue, (a.id, "first_name"))
    row.ciphertext = blob
    session.add(row)
    session.commit()
    victim = b if target == "other_customer" else a
    with pytest.raises(DecryptionError) as info:
        service.decrypt_values(session=session, envelope=runtime.envelope, customer=victim)
    assert info.value.code == "integrity_error"
    assert "Alpha" not in str(info.value) and "Beta" not in str(info.value)


def test_lookup_normalises_and_uses_blind_index(runtime, session):
    c = create_customer(session, runtime, email="alice.mueller@example.de", external_id="SHOP-77")
    found = service.lookup(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        attribute="email",
        value="Alice.Mueller@Example.de ",
    )
    assert found == c.id
    assert (
        service.lookup(
            session=session,
            envelope=runtime.envelope,
            policy=runtime.policy,
            attribute="external_id",
            value="SHOP-77",
        )
        == c.id
    )
    with pytest.raises(CustomerNotFound):
        service.lookup(
            session=session,
            envelope=runtime.envelope,
            policy=runtime.policy,
            attribute="email",
            value="bob@example.de",
        )


def test_rectify_replaces_and_removes_with_index(runtime, session):
    c = create_customer(session, runtime, email="old@example.de", phone="+4930111111")
    _, names = service.rectify(
        session=session,
        envelope=runtime.envelope,
        policy=runtime.policy,
        customer_id=c.id,
        attributes={"email": "new@example.de", "phone": None},
    )
    session.commit()
    assert "phone" not in names and "email" in names
    kw = {"session": session, "envelope": runtime.envelope, "policy": runtime.policy}
    assert service.lookup(**kw, attribute="email", value="new@example.de") == c.id
    with pytest.raises(CustomerNotFound):
        service.lookup(**kw, attribute="email", value="old@example.de")
    with pytest.raises(CustomerNotFound):
        service.lookup(**kw, attribute="phone", value="+4930111111")
    values = service.decrypt_values(session=session, envelope=runtime.envelope, customer=c)
    assert values["email"] == "new@example.de" and "phone" not in values


def test_rectify_waiting_on_an_erasure_answers_410_and_writes_nothing(runtime, session):
    """Regression (tests/hardening/test_concurrency_pg.py): rectify read the customer without
    a lock and touched its values first, so on PostgreSQL it deadlocked with a concurrent
    erasure (500) or, queued behind it, wrote new values to the erased customer."""
    from vault.dsr import erasure as dsr_erasure

    c = create_customer(session, runtime)
    session.rollback()
    outcome: list[BaseException | None] = []

    def rectify() -> None:
        with Session(runtime.engine) as s:
            try:
                service.rectify(
                    session=s,
                    envelope=runtime.envelope,
                    policy=runtime.policy,
                    customer_id=c.id,
                    attributes={"first_name": "Max", "email": "neu@example.de"},
                )
                s.commit()
                outcome.append(None)
            except BaseException as exc:
                s.rollback()
                outcome.append(exc)

    with Session(runtime.engine) as eraser:
        dsr_erasure.erase(
            session=eraser,
            customer_id=c.id,
            by=Caller("cli"),
            notary=dsr_erasure.Notary.of(runtime),
        )
        t = threading.Thread(target=rectify)
        t.start()
        t.join(0.5)  # rectify runs as far as it can while the erasure holds its locks
        eraser.commit()
    t.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], CustomerErased), outcome
    left = session.execute(select(CustomerValue).where(CustomerValue.customer_id == c.id))
    assert left.all() == []


def test_duplicate_searchable_value_conflicts(runtime, session):
    create_customer(session, runtime, email="dup@example.de")
    with pytest.raises(Conflict) as info:
        create_customer(session, runtime, email="DUP@example.de")
    assert info.value.code == "duplicate_value"
    session.rollback()
    assert session.execute(select(Customer)).all().__len__() == 1


def test_rotate_and_rewrap_online(runtime, session, settings):
    customers = [create_customer(session, runtime, last_name=f"N{i}") for i in range(60)]
    old_primary = runtime.envelope.primary_kek_id
    LocalKeyFile(settings.data_dir / KEY_FILE_NAME).rotate()
    # A second process-like runtime (the CLI) sees the new primary; the "server" runtime
    # still holds the old key set and must keep reading while the rewrap runs.
    cli = Runtime.build(settings)
    assert cli.envelope.primary_kek_id != old_primary
    errors: list[Exception] = []
    stop = threading.Event()

    def reader():
        with Session(runtime.engine) as s:
            while not stop.is_set():
                for c in customers[::7]:
                    try:
                        fresh = s.get(Customer, c.id, populate_existing=True)
                        service.decrypt_values(session=s, envelope=runtime.envelope, customer=fresh)
                    except Exception as exc:
                        errors.append(exc)
                s.rollback()

    t = threading.Thread(target=reader)
    t.start()
    total = 0
    after = None
    while True:
        with Session(cli.engine) as s:
            n, after = service.rewrap_batch(
                session=s, envelope=cli.envelope, after=after, batch_size=7
            )
            s.commit()
        total += n
        if after is None:
            break
    stop.set()
    t.join()
    cli.engine.dispose()
    assert errors == []
    assert total == 60
    kek_ids = set(session.execute(select(Customer.kek_id)).scalars())
    assert kek_ids == {cli.envelope.primary_kek_id}
    session.expire_all()
    for c in customers:
        fresh = session.get(Customer, c.id)
        values = service.decrypt_values(session=session, envelope=runtime.envelope, customer=fresh)
        assert values["last_name"].startswith("N")
