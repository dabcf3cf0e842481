"""The projection of the preference ledger, pure: what a change does to a customer's explicit
choices, and how the ledger replays into them (no database, no clock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Choices:
    """A customer's explicit choices; what is absent reads as the purpose's default."""

    contact_channels: dict[str, bool] = field(default_factory=dict)
    topics: dict[str, dict[str, bool]] = field(default_factory=dict)
    frequency: dict[str, str] = field(default_factory=dict)
    paused_until: datetime | None = None


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def apply(choices: Choices, change: Mapping[str, Any]) -> Choices:
    """``choices`` with ``change`` (a ledger event's ``change``) applied; a new object."""
    out = Choices(
        contact_channels=dict(choices.contact_channels),
        topics={p: dict(t) for p, t in choices.topics.items()},
        frequency=dict(choices.frequency),
        paused_until=choices.paused_until,
    )
    out.contact_channels.update(change.get("contact_channels") or {})
    for purpose, topics in (change.get("topics") or {}).items():
        out.topics.setdefault(purpose, {}).update(topics)
    out.frequency.update(change.get("frequency") or {})
    if "paused_until" in change:
        out.paused_until = _time(change["paused_until"])
    return out


def replay(changes: Iterable[Mapping[str, Any]]) -> Choices:
    """The choices after ``changes``, in ledger order."""
    choices = Choices()
    for change in changes:
        choices = apply(choices, change)
    return choices
