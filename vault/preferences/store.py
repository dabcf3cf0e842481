"""SQL of the preference domain: the ledger, its projection, reported contacts, the facts the
contact decision reads for a batch of customers, the SQL half of that decision for the audience
query, and the erasure deletes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select
from sqlmodel import Session

from vault.db import driver_execute
from vault.policy import Purpose
from vault.policy.decision import ContactFacts, window_start
from vault.preferences.models import (
    ChoiceKind,
    Contact,
    PreferenceChoice,
    PreferenceEvent,
    PreferenceState,
)
from vault.preferences.rules import Choices

_EVENT = PreferenceEvent.__table__
_STATE = PreferenceState.__table__
_CHOICE = PreferenceChoice.__table__
_CONTACT = Contact.__table__
_INSERT_EVENT = insert(_EVENT).returning(_EVENT.c.seq)
_INSERT_CONTACTS = insert(_CONTACT)

ON, OFF = "on", "off"


# --- the ledger -----------------------------------------------------------------------------


def insert_event(session: Session, row: dict[str, Any]) -> int:
    """Insert one ``preference_event`` row; its ``seq``."""
    return session.connection().execute(_INSERT_EVENT, row).scalar_one()


def events(
    session: Session, customer_id: UUID, *, until: datetime | None = None, limit: int = 10_000
) -> list[PreferenceEvent]:
    """The customer's changes in ledger order (those that occurred at or before ``until``)."""
    stmt = select(PreferenceEvent).where(PreferenceEvent.customer_id == customer_id)
    if until is not None:
        stmt = stmt.where(PreferenceEvent.occurred_at <= until)
    stmt = stmt.order_by(PreferenceEvent.occurred_at, PreferenceEvent.seq).limit(limit)
    return list(session.execute(stmt).scalars())


# --- the projection -------------------------------------------------------------------------


def read_choices(session: Session, customer_id: UUID) -> Choices:
    """The customer's explicit choices, from the projection."""
    conn = session.connection()
    choices = Choices()
    for purpose, kind, name, value in conn.execute(
        select(_CHOICE.c.purpose, _CHOICE.c.kind, _CHOICE.c.name, _CHOICE.c.value).where(
            _CHOICE.c.customer_id == customer_id
        )
    ):
        if kind == ChoiceKind.CONTACT_CHANNEL:
            choices.contact_channels[name] = value == ON
        elif kind == ChoiceKind.TOPIC:
            choices.topics.setdefault(purpose, {})[name] = value == ON
        elif kind == ChoiceKind.FREQUENCY:
            choices.frequency[purpose] = value
    choices.paused_until = conn.execute(
        select(_STATE.c.paused_until).where(_STATE.c.customer_id == customer_id)
    ).scalar_one_or_none()
    return choices


def _choice_rows(customer_id: UUID, change: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, on in (change.get("contact_channels") or {}).items():
        rows.append(("", ChoiceKind.CONTACT_CHANNEL, name, ON if on else OFF))
    for purpose, topics in (change.get("topics") or {}).items():
        for name, on in topics.items():
            rows.append((purpose, ChoiceKind.TOPIC, name, ON if on else OFF))
    for purpose, frequency in (change.get("frequency") or {}).items():
        rows.append((purpose, ChoiceKind.FREQUENCY, "", frequency))
    return [
        {"customer_id": customer_id, "purpose": p, "kind": str(k), "name": n, "value": v}
        for p, k, n, v in rows
    ]


def write_projection(
    session: Session,
    customer_id: UUID,
    change: dict[str, Any],
    paused_until: datetime | None,
    event_id: UUID,
    now: datetime,
) -> None:
    """Apply one change to the projection (the caller holds the customer's lock): its choice
    rows replaced, the state row (pause, last event) written."""
    conn = session.connection()
    for row in _choice_rows(customer_id, change):
        conn.execute(
            delete(_CHOICE).where(
                _CHOICE.c.customer_id == customer_id,
                _CHOICE.c.purpose == row["purpose"],
                _CHOICE.c.kind == row["kind"],
                _CHOICE.c.name == row["name"],
            )
        )
        conn.execute(insert(_CHOICE), row)
    values = {"paused_until": paused_until, "event_id": event_id, "updated_at": now}
    updated = conn.execute(
        _STATE.update().where(_STATE.c.customer_id == customer_id).values(**values)
    )
    if not updated.rowcount:
        conn.execute(insert(_STATE), {"customer_id": customer_id, **values})


# --- contacts -------------------------------------------------------------------------------


def insert_contacts(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_INSERT_CONTACTS, rows)


def contacts(session: Session, customer_id: UUID, limit: int = 1000) -> list[Contact]:
    """The customer's reported contacts, newest first."""
    return list(
        session.execute(
            select(Contact)
            .where(Contact.customer_id == customer_id)
            .order_by(Contact.sent_at.desc(), Contact.id.desc())
            .limit(limit)
        ).scalars()
    )


# --- the contact decision's facts (its second half, in Python) ------------------------------


def contact_facts(
    session: Session, customer_ids: Sequence[UUID], purpose: Purpose
) -> dict[UUID, ContactFacts]:
    """The :class:`~vault.policy.decision.ContactFacts` of each customer for ``purpose``;
    customers without any filter or contact are left out (they have none: ``NO_FILTERS``).
    Three reads for the whole batch, whatever its size."""
    if not customer_ids:
        return {}
    conn = session.connection()
    ids = list(customer_ids)
    channels: dict[UUID, set[str]] = {}
    topics: dict[UUID, set[str]] = {}
    frequency: dict[UUID, str] = {}
    paused: dict[UUID, datetime | None] = {}
    last: dict[UUID, datetime] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for cid, _purpose, kind, name, value in conn.execute(
            select(
                _CHOICE.c.customer_id,
                _CHOICE.c.purpose,
                _CHOICE.c.kind,
                _CHOICE.c.name,
                _CHOICE.c.value,
            ).where(_CHOICE.c.customer_id.in_(chunk), _CHOICE.c.purpose.in_(["", purpose.id]))
        ):
            if kind == ChoiceKind.CONTACT_CHANNEL and value == OFF:
                channels.setdefault(cid, set()).add(name)
            elif kind == ChoiceKind.TOPIC and value == OFF:
                topics.setdefault(cid, set()).add(name)
            elif kind == ChoiceKind.FREQUENCY and value in purpose.frequencies:
                frequency[cid] = value
        for cid, until in conn.execute(
            select(_STATE.c.customer_id, _STATE.c.paused_until).where(
                _STATE.c.customer_id.in_(chunk), _STATE.c.paused_until.is_not(None)
            )
        ):
            paused[cid] = until
        for cid, at in conn.execute(
            select(_CONTACT.c.customer_id, func.max(_CONTACT.c.sent_at))
            .where(_CONTACT.c.customer_id.in_(chunk), _CONTACT.c.purpose == purpose.id)
            .group_by(_CONTACT.c.customer_id)
        ):
            last[cid] = _aware(at)
    out = {}
    for cid in set(channels) | set(topics) | set(frequency) | set(paused) | set(last):
        out[cid] = ContactFacts(
            channels_off=frozenset(channels.get(cid, ())),
            topics_off=frozenset(topics.get(cid, ())),
            frequency=frequency.get(cid),
            paused_until=paused.get(cid),
            last_contact=last.get(cid),
        )
    return out


_ONE = (
    "SELECT 'c', kind, name, value, NULL FROM preference_choice"
    " WHERE customer_id = {p} AND purpose IN ('', {p})"
    " UNION ALL SELECT 's', NULL, NULL, NULL, paused_until FROM preference_state"
    " WHERE customer_id = {p}"
    " UNION ALL SELECT 'k', NULL, NULL, NULL, MAX(sent_at) FROM contact"
    " WHERE customer_id = {p} AND purpose = {p}"
)
_ONE_SQL = {"sqlite": _ONE.format(p="?"), "postgresql": _ONE.format(p="%s")}


def contact_facts_of_one(session: Session, customer_id: UUID, purpose: Purpose) -> ContactFacts:
    """:func:`contact_facts` of one customer in one driver statement (the gated read: the hot
    path makes one round trip for the filters, not three)."""
    conn = session.connection()
    cid: Any = customer_id.hex if conn.dialect.name == "sqlite" else customer_id
    rows = driver_execute(
        conn, _ONE_SQL[conn.dialect.name], (cid, purpose.id, cid, cid, purpose.id)
    ).fetchall()
    channels, topics, frequency, paused, last = set(), set(), None, None, None
    for tag, kind, name, value, at in rows:
        if tag == "c":
            if kind == ChoiceKind.CONTACT_CHANNEL and value == OFF:
                channels.add(name)
            elif kind == ChoiceKind.TOPIC and value == OFF:
                topics.add(name)
            elif kind == ChoiceKind.FREQUENCY and value in purpose.frequencies:
                frequency = value
        elif at is not None:
            if tag == "s":
                paused = _aware(at)
            else:
                last = _aware(at)
    return ContactFacts(frozenset(channels), frozenset(topics), frequency, paused, last)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's MAX() hands back the stored text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- the contact decision in SQL (its first half, for the audience query) -------------------


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """What the audience query leaves out for one contact: the channel or topic switched off,
    a running pause, a contact already reported in the customer's frequency window."""

    purpose: Purpose
    contact_channel: str | None
    topic: str | None
    now: datetime

    def sql(self, dialect: str, p: str) -> tuple[str, list[Any]]:
        """``AND NOT EXISTS ...`` conditions on the customer alias ``c`` and their params."""

        def t(value: datetime) -> datetime | str:
            if dialect == "sqlite":
                return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return value

        params: list[Any] = []
        off = []
        if self.contact_channel is not None:
            off.append(f"(pc.purpose = '' AND pc.kind = 'contact_channel' AND pc.name = {p})")
            params.append(self.contact_channel)
        if self.topic is not None:
            off.append(f"(pc.purpose = {p} AND pc.kind = 'topic' AND pc.name = {p})")
            params += [self.purpose.id, self.topic]
        sql = ""
        if off:
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM preference_choice pc WHERE pc.customer_id = c.id"  # noqa: S608 (placeholders only)
                f" AND pc.value = 'off' AND ({' OR '.join(off)}))"
            )
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM preference_state ps WHERE ps.customer_id = c.id"  # noqa: S608 (placeholders only)
            f" AND ps.paused_until > {p})"
        )
        params.append(t(self.now))
        frequencies = self.purpose.frequencies
        if frequencies:
            cases = " ".join(f"WHEN {p} THEN {p}" for _ in frequencies)
            sql += (
                " AND NOT EXISTS (SELECT 1 FROM contact k WHERE k.customer_id = c.id"  # noqa: S608 (placeholders only)
                f" AND k.purpose = {p} AND k.sent_at >= CASE (SELECT pf.value FROM"
                " preference_choice pf WHERE pf.customer_id = c.id AND pf.purpose = "
                f"{p} AND pf.kind = 'frequency' AND pf.name = '') {cases} ELSE {p} END)"
            )
            params += [self.purpose.id, self.purpose.id]
            for name in frequencies:
                params += [name, t(window_start(name, self.now))]
            params.append(t(window_start(frequencies[0], self.now)))
        return sql, params


# --- erasure (vault.dsr) --------------------------------------------------------------------


def shred(session: Session, ids: Iterable[UUID]) -> None:
    """Erasure: delete the customers' projection and reported contacts. The ledger stays (no
    clear PII, proof of what the customer chose), like the consent ledger."""
    conn = session.connection()
    wanted = list(ids)
    for table in (_CONTACT, _CHOICE, _STATE):
        conn.execute(delete(table).where(table.c.customer_id.in_(wanted)))
