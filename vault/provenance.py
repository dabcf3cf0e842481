"""Who did it: the one provenance value every service that writes evidence takes.

``Caller(actor, request_id)`` names the caller as the audit log does (``client:<id>``,
``customer:<id>``, ``staff:<id>``, ``cli``, ``system``) and the request that carried the call (None
outside a request). Routes get it from :data:`vault.auth.deps.CallerDep` or from the
self-service visit; the CLI and the worker build their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    actor: str
    request_id: str | None = None


CLI = Caller("cli")
SYSTEM = Caller("system")
