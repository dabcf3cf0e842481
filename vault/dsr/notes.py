"""Notes beside coded reasons: free text, encrypted under the customer's data key.

A DSR reason (legal hold, restriction, extension, closing) is a code (:mod:`vault.dsr.models`)
that may go anywhere: the ``dsr_request`` and ``customer`` rows, the audit log, error bodies.
What a person wants to add in their own words is a *note*: it may name the customer or a case,
so it never goes into a store that outlives erasure in clear. It is sealed with the customer's
DEK (:class:`vault.crypto.envelope.DataKey`, the envelope's format), its associated data naming
what it belongs to (``dsr_note/legal_hold``, ``dsr_note/<request id>/close`` ...), so a note
moved to another row or customer does not open. Erasure destroys the key and nulls the note
columns (:func:`vault.dsr.erasure._shred`): an erased customer's requests keep only their codes.
"""

from __future__ import annotations

from uuid import UUID

from sqlmodel import Session

from vault.crypto.envelope import DataKey, Envelope
from vault.customers import service as customers_service
from vault.customers.schemas import Customer, CustomerStatus

MAX_NOTE = 1000  # characters
# what the API accepts in a note: any text but control characters (newline and tab allowed)
NOTE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"

LEGAL_HOLD = "dsr_note/legal_hold"
RESTRICTION = "dsr_note/restriction"


def extension_label(request_uuid: UUID) -> str:
    return f"dsr_note/{request_uuid}/extension"


def close_label(request_uuid: UUID) -> str:
    return f"dsr_note/{request_uuid}/close"


def clean(note: str | None) -> str | None:
    """A note as kept: surrounding whitespace stripped; blank is none."""
    if note is None:
        return None
    note = note.strip()
    return note or None


def seal(envelope: Envelope, customer: Customer, label: str, note: str | None) -> bytes | None:
    """The note encrypted under the customer's DEK (None for no note). An erased customer has
    no key: :class:`~vault.errors.CustomerErased` (410)."""
    note = clean(note)
    if note is None:
        return None
    return customers_service.data_key(envelope, customer).encrypt(label, note.encode())


def _key(envelope: Envelope, customer: Customer) -> DataKey | None:
    if customer.status == CustomerStatus.ERASED or customer.dek_wrapped is None:
        return None
    return customers_service.data_key(envelope, customer)


def open_note(envelope: Envelope, customer: Customer, label: str, blob: bytes | None) -> str | None:
    """The note of one of the customer's records; None without one, or once the customer is
    erased (the key is gone)."""
    if blob is None:
        return None
    key = _key(envelope, customer)
    return None if key is None else key.decrypt(label, blob).decode()


class NoteReader:
    """Opens the notes of many customers' records (a list of requests): each customer's DEK
    is unwrapped once per reader."""

    def __init__(self, session: Session, envelope: Envelope):
        self._session = session
        self._envelope = envelope
        self._keys: dict[UUID, DataKey | None] = {}

    def open(self, customer_id: UUID, label: str, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        if customer_id not in self._keys:
            customer = customers_service.get_customer(self._session, customer_id, allow_erased=True)
            self._keys[customer_id] = _key(self._envelope, customer)
        key = self._keys[customer_id]
        return None if key is None else key.decrypt(label, blob).decode()

    def __repr__(self) -> str:
        return "NoteReader(***)"
