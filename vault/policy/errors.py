"""Errors about the policy itself, shared by every door that names a purpose."""

from __future__ import annotations

from vault.errors import InvalidRequest


class UnknownPurpose(InvalidRequest):
    """A purpose id the policy does not define. The id is client input: never echoed."""

    code = "unknown_purpose"
    default_detail = "No purpose with this id in the policy."
