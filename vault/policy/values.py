"""Typed validation, normalisation and reduction of attribute values.

Normalised values are what gets encrypted and what the blind index is computed over, so
``Alice.Mueller@Example.de `` and ``alice.mueller@example.de`` are the same customer.
Error messages name the attribute and the rule, never the value.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from vault.errors import ValidationFailed
from vault.policy.errors import InvalidCharacters
from vault.policy.models import Attribute, AttributeType, Reduction

Value = str | int | bool

_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS) - {"001"}
_DEFAULT_PHONE_REGION = "DE"
# Every control (Cc) but tab, line feed and carriage return (the whitespace folding makes them
# spaces), every format character (Cf: soft hyphen, zero-width space, non-joiner and joiner,
# LRM/RLM, the bidi embeddings, overrides and isolates U+202A..U+202E and U+2066..U+2069, word
# joiner, BOM, interlinear annotation, tag characters …) and the lone surrogates (Cs, which no
# UTF-8 can carry). They are invisible or reorder what is shown: "Anna" and "An\u200bna" look
# the same to the person reading them and differ to the blind index; U+202E turns
# "moc.evil@x" around on screen. Spelled out as ranges (scanning the Unicode table costs 0.3 s
# at import); tests/customers/test_characters.py checks them against unicodedata.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


def has_invisible(text: str) -> bool:
    """Whether ``text`` carries a character no text value may hold (see ``_INVISIBLE``)."""
    return _INVISIBLE.search(text) is not None


def _fail(attr: Attribute, why: str) -> ValidationFailed:
    return ValidationFailed(f"Attribute '{attr.name}': {why}.", attribute=attr.name)


def _text(attr: Attribute, raw: Any) -> str:
    if not isinstance(raw, str):
        raise _fail(attr, "expected a string")
    if has_invisible(raw):  # before folding: str.split() would quietly eat U+001C..U+001F, U+0085
        raise InvalidCharacters(
            f"Attribute '{attr.name}': contains control or invisible formatting characters "
            "(such as zero-width spaces or bidirectional overrides).",
            attribute=attr.name,
        )
    value = " ".join(raw.split())
    if not value:
        raise _fail(attr, "must not be empty")
    if len(value) > attr.max_length:
        raise _fail(attr, f"longer than {attr.max_length} characters")
    return value


def normalise(attr: Attribute, raw: Any) -> Value:
    """Validate ``raw`` for ``attr`` and return its canonical form, or raise ValidationFailed."""
    t = attr.type
    if t is AttributeType.BOOLEAN:
        if not isinstance(raw, bool):
            raise _fail(attr, "expected true or false")
        return raw
    if t is AttributeType.INTEGER:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _fail(attr, "expected an integer")
        if attr.min is not None and raw < attr.min:
            raise _fail(attr, f"must be at least {attr.min}")
        if attr.max is not None and raw > attr.max:
            raise _fail(attr, f"must be at most {attr.max}")
        return raw
    value = _text(attr, raw)
    if t is AttributeType.EMAIL:
        if len(value) > 254:
            raise _fail(attr, "not a valid e-mail address")
        try:
            checked = validate_email(value, check_deliverability=False)
        except EmailNotValidError:
            raise _fail(attr, "not a valid e-mail address") from None
        return checked.normalized.lower()
    if t is AttributeType.PHONE:
        try:
            number = phonenumbers.parse(value, _DEFAULT_PHONE_REGION)
        except phonenumbers.NumberParseException:
            raise _fail(attr, "not a valid phone number") from None
        if not phonenumbers.is_valid_number(number):
            raise _fail(attr, "not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if t is AttributeType.DATE:
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise _fail(attr, "expected a date as YYYY-MM-DD") from None
        if len(value) != 10 or parsed.year < 1900 or parsed > date.today():
            raise _fail(attr, "expected a past date as YYYY-MM-DD after 1900")
        return parsed.isoformat()
    if t is AttributeType.ENUM:
        if value not in attr.values:
            raise _fail(attr, f"must be one of {', '.join(attr.values)}")
        return value
    if t is AttributeType.COUNTRY:
        code = value.upper()
        if code not in _COUNTRIES:
            raise _fail(attr, "expected an ISO 3166-1 alpha-2 country code")
        return code
    if t is AttributeType.POSTAL_CODE:
        value = value.upper()
        if not re.fullmatch(r"[A-Z0-9][A-Z0-9 -]{1,9}", value):
            raise _fail(attr, "not a valid postal code")
    if attr.pattern is not None and not re.fullmatch(attr.pattern, value):
        raise _fail(attr, "does not have the expected format")
    return value


def index_form(value: Value) -> str:
    """The string a blind index is computed over (values are already normalised)."""
    return str(value)


def reduce(value: Value, reduction: Reduction | None) -> Value:
    """The reduced form a purpose receives instead of the full value."""
    if reduction is None:
        return value
    text = str(value)
    if reduction is Reduction.YEAR:
        return text[:4]
    if reduction is Reduction.PREFIX2:
        return text[:2]
    if reduction is Reduction.DOMAIN:
        return text.rpartition("@")[2]
    raise AssertionError(reduction)
