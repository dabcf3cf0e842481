"""Rate limits of the doors that can be guessed at or abused, built on the ``limits`` package.

Five rules, each a ``limits`` string from the settings (``VAULT_RATE_LIMIT_*``):

- ``token_client``: token requests per client id, whatever their outcome (an Argon2 check each);
- ``token_ip``: token requests per client address;
- ``token_failures_ip``: failed token requests per client address (secret guessing);
- ``link_customer``: magic links issued per customer (mail bombing, link flooding);
- ``login_failures_ip``: failed magic-link redemptions per client address (token guessing).

Every rule is checked before the expensive or revealing work (Argon2, the database), so a
throttled request costs a dictionary look-up and tells nothing about whether a client id or a
link exists. Counters use the moving-window strategy (no burst at a window edge) and live in
the Runtime's storage: in memory per process by default, or in Redis shared by every replica
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

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from vault.config import Settings
from vault.errors import VaultError

log = logging.getLogger("vault.ratelimit")

RULES = ("token_client", "token_ip", "token_failures_ip", "link_customer", "login_failures_ip")


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
    counted after the fact)."""

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

    def reset(self) -> None:
        """Forget every counter (tests, and an operator after a false alarm)."""
        self.storage.reset()


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a proxy: uvicorn's proxy headers)."""
    return request.client.host if request.client else "unknown"
