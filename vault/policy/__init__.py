"""Policy: the attributes a company keeps and the purposes it may use them for.

``policies/attributes.toml`` and ``policies/purposes.toml`` are the single source of truth for what
data exists, which purpose may see which attribute (in which reduced form) and on which GDPR legal
basis. :func:`load_policy` validates them with pydantic and cross-checks them; every problem names
the file, the entry and what is wrong. The access decision that every door uses lives in
:mod:`vault.policy.decision`.
"""

from vault.policy.loader import PolicyError, load_policy
from vault.policy.models import Attribute, AttributeType, LegalBasis, Policy, Purpose

__all__ = [
    "Attribute",
    "AttributeType",
    "LegalBasis",
    "Policy",
    "PolicyError",
    "Purpose",
    "load_policy",
]
