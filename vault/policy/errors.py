"""Errors about the policy itself, shared by every door that names a purpose."""

from __future__ import annotations

from vault.errors import InvalidRequest, ValidationFailed


class UnknownPurpose(InvalidRequest):
    """A purpose id the policy does not define. The id is client input: never echoed."""

    code = "unknown_purpose"
    default_detail = "No purpose with this id in the policy."


class InvalidCharacters(ValidationFailed):
    """A text value carries control, invisible or bidirectional formatting characters
    (:func:`vault.policy.values.has_invisible`); ``attribute`` names the attribute."""

    code = "invalid_characters"
    default_detail = (
        "The value contains control or invisible formatting characters (such as zero-width "
        "spaces or bidirectional overrides)."
    )
