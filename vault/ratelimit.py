"""Rate limits of the doors that can be guessed at or abused, built on the ``limits`` package.

Nine rules, each a ``limits`` string from the settings (``VAULT_RATE_LIMIT_*``):

- ``token_client``: failed token requests per client id (known and unknown ids alike);
- ``token_ip``: token requests per client address;
- ``token_failures_ip``: failed token requests per client address (secret guessing);
- ``link_customer``: magic links issued per customer (mail bombing, link flooding);
- ``login_failures_ip``: failed magic-link redemptions per client address (token guessing);
- ``link_request_address``: "send me a link" requests on /me per e-mail address asked for;
- ``link_request_ip``: "send me a link" requests on /me per client address (address probing);
- ``staff_login_ip``: failed staff sign-ins at /staff per client address (password guessing);
- ``staff_login_name``: failed staff sign-ins per account name tried, known or not.

Every rule is decided before the expensive or revealing work (Argon2, the database), so a
throttled request costs a dictionary look-up and tells nothing about whether a client id or a
link exists. A failure budget is *charged first* (:meth:`RateLimiter.charge_first`) and the
charge refunded when the attempt turns out to succeed (:meth:`RateLimiter.refund`): checking
first and counting the failure afterwards let 25 parallel wrong secrets through a limit of 10,
since all of them passed the check before the first one had failed.

**A client id's budget cannot be turned against its owner.** Anyone may know a client id, so
the per-id budget counts failures only, and an address that obtained a token for that id within
the last day is *remembered* (:meth:`RateLimiter.remember`) and not refused by it: an attacker
who spends an app's budget shuts out other unknown addresses (a distributed guess), not the
app. The per-address rules still apply to everyone. Addresses are the peer's, or, from a proxy
the operator names (``VAULT_FORWARDED_ALLOW_IPS``, ``vault serve --forwarded-allow-ips``), the
one it forwards; nobody else can pick their address with ``X-Forwarded-For``.

Counters use the moving-window strategy (no burst at a window edge) and live in the Runtime's
storage: in memory per process by default, or in Redis shared by every replica
(``VAULT_RATE_LIMIT_STORAGE=redis://…``, needs the ``redis`` extra). Identifiers are stored only
as keyed hashes, so the storage holds neither client addresses nor client ids. If the storage
cannot be reached the request is let through and the failure logged: an outage of Redis must
not take the token endpoint down with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from vault.config import Settings
from vault.errors import VaultError

log = logging.getLogger("vault.ratelimit")

RULES = (
    "token_client",
    "token_ip",
    "token_failures_ip",
    "link_customer",
    "login_failures_ip",
    "link_request_address",
    "link_request_ip",
    "staff_login_ip",
    "staff_login_name",
)
# how long an address that succeeded for an identifier is remembered (see remember())
REMEMBER = parse("1/day")


@dataclass(frozen=True)
class Charge:
    """One unit charged first to a rule's budget, to refund if the attempt succeeds."""

    rule: str
    ident: str

    def __repr__(self) -> str:
        return f"Charge({self.rule}, ***)"


class RateLimited(VaultError):
    code = "rate_limited"
    status = 429
    default_detail = "Too many requests."

    def __init__(self, retry_after: int, *, first: bool = False):
        super().__init__(f"Too many requests. Try again in {retry_after} seconds.")
        self.retry_after = retry_after
        # the first refusal of this rule and identifier within one window: worth an audit
        # event, where the following refusals would only add load under attack
        self.first = first

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimiter:
    """The rules of one app and their counters. ``check`` spends nothing, ``hit`` spends one
    and refuses when the budget is gone, ``charge`` spends one and never refuses (a failure
    counted after the fact), ``charge_first`` is ``hit`` with a receipt that ``refund`` gives
    back (an attempt presumed to fail until it succeeds)."""

    def __init__(
        self,
        settings: Settings,
        *,
        key: bytes,
        storage: Storage | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.items: dict[str, RateLimitItem] = {
            rule: parse(getattr(settings, f"rate_limit_{rule}")) for rule in RULES
        }
        self.storage = storage or storage_from_string(
            settings.rate_limit_storage, wrap_exceptions=True
        )
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.clock = clock
        self._key = hmac.new(key, b"vault rate limit identifiers", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"RateLimiter(storage={type(self.storage).__name__}, ***)"

    def _id(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def _refuse(self, rule: str, ident: str) -> RateLimited:
        item = self.items[rule]
        once = type(item)(1, item.multiples)
        try:
            reset = self.strategy.get_window_stats(item, rule, ident).reset_time
            first = self.strategy.hit(once, "refused", rule, ident)
        except StorageError:
            reset, first = self.clock() + item.get_expiry(), False
        log.info("rate limit %s reached", rule)  # no identifier: it may be personal data
        return RateLimited(max(1, math.ceil(reset - self.clock())), first=first)

    def check(self, rule: str, value: str) -> None:
        """Raise :class:`RateLimited` if ``rule`` has no budget left for ``value``."""
        self._enforce(self.strategy.test, rule, value)

    def hit(self, rule: str, value: str) -> None:
        """Spend one of ``rule``'s budget for ``value``, or raise :class:`RateLimited`."""
        self._enforce(self.strategy.hit, rule, value)

    def _enforce(self, op: Callable[..., bool], rule: str, value: str) -> None:
        ident = self._id(value)
        try:
            ok = op(self.items[rule], rule, ident)
        except StorageError as exc:
            log.warning("rate limit storage unavailable (%s); request let through", exc)
            return
        if not ok:
            raise self._refuse(rule, ident)

    def charge(self, rule: str, value: str) -> None:
        """Count one more for ``value`` (a failed attempt); never raises."""
        try:
            self.strategy.hit(self.items[rule], rule, self._id(value))
        except StorageError as exc:
            log.warning("rate limit storage unavailable (%s)", exc)

    def charge_first(self, rule: str, value: str) -> Charge:
        """Spend one of ``rule``'s budget for ``value`` before the attempt, or raise
        :class:`RateLimited`; :meth:`refund` the returned charge if the attempt succeeds. The
        spending is one atomic step of the storage, so parallel attempts cannot all pass."""
        self.hit(rule, value)
        return Charge(rule, self._id(value))

    def refund(self, charge: Charge | None) -> None:
        """Give back a :meth:`charge_first` (the attempt succeeded); never raises.

        ``limits``' moving window has no refund, so the newest entry of the window is removed
        from the storage itself (in memory and in Redis, the two storages the vault supports);
        with another storage the charge simply stays."""
        if charge is None:
            return
        key = self.items[charge.rule].key_for(charge.rule, charge.ident)
        storage = self.storage
        try:
            if isinstance(storage, MemoryStorage):
                with storage.locks[key]:
                    entries = storage.events.get(key)
                    if entries:
                        entries.pop(0)  # newest first
            elif hasattr(storage, "get_connection") and hasattr(storage, "prefixed_key"):
                storage.get_connection().lpop(storage.prefixed_key(key))  # Redis: newest first
        except Exception as exc:  # a lost refund must not fail a success
            log.warning("rate limit refund failed (%s)", type(exc).__name__)

    def remember(self, name: str, *values: str) -> None:
        """Note that ``values`` (a client id and an address) succeeded, for a day from now."""
        ident = self._id("\x1f".join(values))
        try:
            self.strategy.clear(REMEMBER, name, ident)  # a day from the latest success
            self.strategy.hit(REMEMBER, name, ident)
        except StorageError as exc:
            log.warning("rate limit storage unavailable (%s)", exc)

    def remembers(self, name: str, *values: str) -> bool:
        """Whether :meth:`remember` noted ``values`` within the last day."""
        try:
            return not self.strategy.test(REMEMBER, name, self._id("\x1f".join(values)))
        except StorageError as exc:
            log.warning("rate limit storage unavailable (%s)", exc)
            return False

    def reset(self) -> None:
        """Forget every counter (tests, and an operator after a false alarm)."""
        self.storage.reset()


def client_address(request: Request) -> str:
    """The caller's address: the peer's, or the one a trusted proxy forwarded (the app trusts
    ``X-Forwarded-For`` only from ``VAULT_FORWARDED_ALLOW_IPS``, see :mod:`vault.app`)."""
    return request.client.host if request.client else "unknown"
