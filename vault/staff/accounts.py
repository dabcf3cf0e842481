"""Staff accounts: create, list, disable, reset (the ``vault staff`` commands), and sign-in.

- A password is kept only as an Argon2id hash (argon2-cffi's defaults, re-hashed on sign-in
  when those change); the TOTP secret only sealed (:mod:`vault.staff.totp`). Both are set at
  ``create`` and replaced together at ``reset``, which prints the new provisioning URI once.
- **Sign-in** (:func:`sign_in`) checks name, password and TOTP code and answers one outcome
  for every refusal, so the page cannot tell an unknown name from a wrong password: an unknown
  name is verified against a dummy hash (the same Argon2 cost). Wrong password, wrong code and
  a replayed code count as failures; ``VAULT_STAFF_LOCKOUT_FAILURES`` of them in a row lock the
  account for ``VAULT_STAFF_LOCKOUT_SECONDS`` (then even the right credentials are refused). A
  disabled account never signs in. Every refusal and every sign-in is an audit event.
- Disabling or resetting an account ends its sessions at once (the rows go); a session of an
  account disabled meanwhile is refused on its next request anyway (:mod:`vault.staff.sessions`).

Services never commit.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlmodel import Session

from vault.audit import record as audit_record
from vault.audit.actions import AuditAction
from vault.config import Settings
from vault.crypto.envelope import Envelope
from vault.db import utcnow
from vault.errors import DecryptionError
from vault.provenance import CLI, Caller
from vault.staff import totp
from vault.staff.errors import InvalidStaffAccount, StaffNameTaken, StaffNotFound
from vault.staff.models import StaffAccount, StaffSession


class Role(StrEnum):
    STORE = "store"
    CALL_CENTER = "call_center"
    PRIVACY_OFFICER = "privacy_officer"
    AUDITOR = "auditor"


ROLES = tuple(r.value for r in Role)
STAFF_ACTOR = "staff"
NAME = re.compile(r"[a-z0-9][a-z0-9._\-]{1,63}")
STORE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_ID_ALPHABET = "abcdefghijkmnopqrstuvwxyz"  # letters only: ids never look like phone numbers

_hasher = PasswordHasher()  # Argon2id
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


def actor(staff_id: str) -> str:
    return f"{STAFF_ACTOR}:{staff_id}"


def new_staff_id() -> str:
    return "st" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def normalise_name(name: str) -> str:
    return name.strip().lower()


def _check(name: str, role: str, store: str | None, password: str) -> tuple[str, str | None]:
    name = normalise_name(name)
    if not NAME.fullmatch(name):
        raise InvalidStaffAccount(
            "The name must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'."
        )
    if role not in ROLES:
        raise InvalidStaffAccount(f"The role must be one of: {', '.join(ROLES)}.")
    store = (store or "").strip() or None
    if store is not None and not STORE.fullmatch(store):
        raise InvalidStaffAccount("The store must be 1-100 printable characters.")
    if role == Role.STORE and store is None:
        raise InvalidStaffAccount("A store account needs --store (the store it works in).")
    _check_password(password)
    return name, store


def _check_password(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise InvalidStaffAccount(
            f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long."
        )


def _audit(
    session: Session, by: Caller, action: AuditAction, account: StaffAccount, now: datetime
) -> None:
    audit_record.record(
        session=session,
        by=by,
        action=action,
        details={"staff_id": account.id, "role": account.role},
        now=now,
    )


@dataclass(frozen=True)
class Provisioned:
    """An account and the TOTP provisioning URI of its new secret (shown once)."""

    account: StaffAccount
    totp_uri: str

    def __repr__(self) -> str:
        return f"Provisioned(account={self.account!r}, ***)"


def create_account(
    *,
    session: Session,
    envelope: Envelope,
    name: str,
    role: str,
    password: str,
    store: str | None = None,
    by: Caller = CLI,
    now: datetime | None = None,
) -> Provisioned:
    now = now or utcnow()
    name, store = _check(name, role, store, password)
    if session.execute(select(StaffAccount.id).where(StaffAccount.name == name)).first():
        raise StaffNameTaken()
    staff_id = new_staff_id()
    secret = totp.new_secret()
    account = StaffAccount(
        id=staff_id,
        name=name,
        role=role,
        store=store,
        password_hash=_hasher.hash(password),
        totp_sealed=totp.seal(envelope, staff_id, secret),
        created_at=now,
    )
    session.add(account)
    session.flush()
    _audit(session, by, AuditAction.STAFF_CREATED, account, now)
    return Provisioned(account, totp.provisioning_uri(secret, name))


def get_account(session: Session, name: str) -> StaffAccount:
    account = session.execute(
        select(StaffAccount).where(StaffAccount.name == normalise_name(name))
    ).scalar_one_or_none()
    if account is None:
        raise StaffNotFound()
    return account


def list_accounts(session: Session) -> list[StaffAccount]:
    return list(session.execute(select(StaffAccount).order_by(StaffAccount.created_at)).scalars())


def end_sessions(session: Session, staff_id: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))


def disable_account(
    *, session: Session, name: str, by: Caller = CLI, now: datetime | None = None
) -> StaffAccount:
    """Offboarding: the account can no longer sign in, and its sessions end now."""
    now = now or utcnow()
    account = get_account(session, name)
    if account.disabled_at is None:
        account.disabled_at = now
        session.add(account)
    end_sessions(session, account.id)
    session.flush()
    _audit(session, by, AuditAction.STAFF_DISABLED, account, now)
    return account


def reset_account(
    *,
    session: Session,
    envelope: Envelope,
    name: str,
    password: str,
    by: Caller = CLI,
    now: datetime | None = None,
) -> Provisioned:
    """A new password and a new TOTP secret (lost phone, forgotten password, lockout): the old
    ones stop working, the account's sessions end, a lock and the failure count are lifted.
    A disabled account stays disabled."""
    now = now or utcnow()
    _check_password(password)
    account = get_account(session, name)
    secret = totp.new_secret()
    account.password_hash = _hasher.hash(password)
    account.totp_sealed = totp.seal(envelope, account.id, secret)
    account.totp_last_step = 0
    account.failed_logins = 0
    account.locked_until = None
    account.reset_at = now
    session.add(account)
    end_sessions(session, account.id)
    session.flush()
    _audit(session, by, AuditAction.STAFF_RESET, account, now)
    return Provisioned(account, totp.provisioning_uri(secret, account.name))


def to_public(account: StaffAccount) -> dict:
    """What ``vault staff list`` shows: never a hash or a secret."""
    return {
        "id": account.id,
        "name": account.name,
        "role": account.role,
        "store": account.store,
        "status": account.status,
        "locked_until": account.locked_until.isoformat() if account.locked_until else None,
        "created_at": account.created_at.isoformat(),
        "disabled_at": account.disabled_at.isoformat() if account.disabled_at else None,
        "reset_at": account.reset_at.isoformat() if account.reset_at else None,
    }


# --- sign-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of :func:`sign_in`: the account on success, else None and the (audited,
    never shown) reason."""

    account: StaffAccount | None
    reason: str | None = None


def _verify_password(hash_: str, password: str) -> bool:
    try:
        return _hasher.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


def _refuse(
    session: Session,
    account: StaffAccount | None,
    reason: str,
    *,
    settings: Settings,
    request_id: str | None,
    now: datetime,
    count: bool,
) -> SignIn:
    if account is not None and count:
        account.failed_logins += 1
        if account.failed_logins >= settings.staff_lockout_failures:
            account.locked_until = now + timedelta(seconds=settings.staff_lockout_seconds)
            account.failed_logins = 0
        session.add(account)
        session.flush()
    audit_record.record(
        session=session,
        by=Caller(actor(account.id) if account else STAFF_ACTOR, request_id),
        action=AuditAction.STAFF_LOGIN_FAILED,
        outcome="denied",
        reason=reason,
        now=now,
    )
    return SignIn(None, reason)


def sign_in(
    *,
    session: Session,
    envelope: Envelope,
    settings: Settings,
    name: str,
    password: str,
    code: str,
    request_id: str | None = None,
    now: datetime | None = None,
) -> SignIn:
    """Check name, password and TOTP code (see the module docstring). Does not start the
    session (:func:`vault.staff.sessions.start_session` does)."""
    now = now or utcnow()
    name = normalise_name(name)
    account = None
    if NAME.fullmatch(name):
        account = session.execute(
            select(StaffAccount).where(StaffAccount.name == name).with_for_update()
        ).scalar_one_or_none()
    password_ok = _verify_password(account.password_hash if account else _DUMMY_HASH, password)
    refuse = dict(settings=settings, request_id=request_id, now=now)
    if account is None:
        return _refuse(session, None, "unknown_account", count=False, **refuse)
    if account.disabled_at is not None:
        return _refuse(session, account, "disabled", count=False, **refuse)
    if account.locked_until is not None and account.locked_until > now:
        return _refuse(session, account, "locked", count=False, **refuse)
    if not password_ok:
        return _refuse(session, account, "wrong_credentials", count=True, **refuse)
    try:
        secret = totp.open_sealed(envelope, account.id, account.totp_sealed)
    except DecryptionError:
        return _refuse(session, account, "totp_unreadable", count=False, **refuse)
    step = totp.matching_step(secret, code, now)
    if step is None:
        return _refuse(session, account, "wrong_credentials", count=True, **refuse)
    if step <= account.totp_last_step:
        return _refuse(session, account, "replayed_code", count=True, **refuse)
    account.totp_last_step = step
    account.failed_logins = 0
    account.locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    session.add(account)
    session.flush()
    audit_record.record(
        session=session,
        by=Caller(actor(account.id), request_id),
        action=AuditAction.STAFF_LOGIN,
        now=now,
    )
    return SignIn(account)


# --- key epochs: the KEK each TOTP secret is sealed under ------------------------------------


def totp_secrets_under(*, session: Session, kek_id: str) -> int:
    """How many TOTP secrets are sealed under ``kek_id`` (``vault keys retire`` refuses it)."""
    blobs = session.execute(select(StaffAccount.totp_sealed)).scalars()
    return sum(totp.sealing_kek(blob) == kek_id for blob in blobs)


def reseal_totp_secrets(*, session: Session, envelope: Envelope) -> int:
    """Seal every TOTP secret not under the primary KEK anew under it (``vault keys rewrap``)."""
    primary = envelope.primary_kek_id
    done = 0
    for account in session.execute(select(StaffAccount)).scalars():
        if totp.sealing_kek(account.totp_sealed) == primary:
            continue
        secret = totp.open_sealed(envelope, account.id, account.totp_sealed)
        account.totp_sealed = totp.seal(envelope, account.id, secret)
        session.add(account)
        done += 1
    session.flush()
    return done
