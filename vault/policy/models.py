"""Pydantic models of the policy files."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LANGUAGES = ("de", "en")


class AttributeType(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"
    DATE = "date"
    ENUM = "enum"
    COUNTRY = "country"
    POSTAL_CODE = "postal_code"
    INTEGER = "integer"
    BOOLEAN = "boolean"


class Category(StrEnum):
    CONTACT = "contact"
    IDENTITY = "identity"
    DEMOGRAPHIC = "demographic"
    PREFERENCE = "preference"
    LOYALTY = "loyalty"
    BEHAVIOURAL = "behavioural"
    HEALTH = "health"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    LEGAL_OBLIGATION = "legal_obligation"


class ContactChannel(StrEnum):
    """How a purpose reaches the customer (``contact_channels`` of a purpose)."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    POST = "post"
    PHONE = "phone"


class Frequency(StrEnum):
    """How often a purpose may contact a customer at most: one contact per calendar window
    (ISO week, month, quarter; in Europe/Berlin), counted from reported contacts."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


class Reduction(StrEnum):
    """Reduced forms a purpose may receive instead of the full value (data minimisation)."""

    YEAR = "year"  # date -> "1984"
    PREFIX2 = "prefix2"  # postal code -> "10"
    DOMAIN = "domain"  # e-mail -> "example.de"


REDUCTION_TYPES: dict[Reduction, set[AttributeType]] = {
    Reduction.YEAR: {AttributeType.DATE},
    Reduction.PREFIX2: {AttributeType.POSTAL_CODE},
    Reduction.DOMAIN: {AttributeType.EMAIL},
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class I18nText(Strict):
    de: str = ""
    en: str = ""

    def missing(self) -> list[str]:
        return [lang for lang in LANGUAGES if not getattr(self, lang).strip()]

    def get(self, lang: str) -> str:
        return getattr(self, lang, "") or self.en


class Attribute(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    type: AttributeType
    category: Category
    label: I18nText
    description: I18nText = I18nText()
    searchable: bool = False
    special_category: bool = False
    retention_days: int | None = Field(None, ge=1)
    # type-specific rules
    values: list[str] = []  # enum
    value_labels: dict[str, I18nText] = {}  # enum: what people read instead of the value
    max_length: int = Field(200, ge=1, le=10_000)  # text
    min: int | None = None  # integer
    max: int | None = None
    pattern: str | None = None  # postal_code / text


class Recipient(Strict):
    id: str
    name: I18nText
    kind: Literal["internal", "processor", "third_party"] = "internal"
    country: str = "DE"


class Topic(Strict):
    """One subject a contact purpose writes about; customers may switch each one off."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    label: I18nText
    description: I18nText = I18nText()


class Purpose(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1)
    legal_basis: LegalBasis
    explicit_consent: bool = False
    attributes: list[str]
    reduce: dict[str, Reduction] = {}
    title: I18nText
    description: I18nText
    changes: I18nText = I18nText()  # what changed in this version (shown on re-consent)
    double_opt_in: bool = False
    consent_ttl_days: int | None = Field(None, ge=1)
    reconsent: bool = False
    gpc_opt_out: bool = False
    direct_marketing: bool = False
    recipients: list[str] = []
    retention_days: int | None = Field(None, ge=1)
    dpv: str | None = None
    tcf_purposes: list[int] = []
    # How the purpose contacts the customer; "email" gives its audience rows an unsubscribe_url
    contact_channels: list[ContactChannel] = []
    # What it writes about (customers switch topics off) and how often a customer may choose to
    # hear from it (the first is the default); names are checked by the loader
    topics: list[Topic] = []
    frequencies: list[str] = []

    @field_validator("attributes")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a purpose must use at least one attribute")
        return v

    def topic(self, topic_id: str) -> Topic | None:
        return next((t for t in self.topics if t.id == topic_id), None)

    @property
    def default_frequency(self) -> str | None:
        return self.frequencies[0] if self.frequencies else None

    @property
    def needs_consent(self) -> bool:
        return self.legal_basis is LegalBasis.CONSENT


# The staff roles that speak with customers (the console's roles ``store`` and ``call_center``);
# each is also the consent channel (touchpoint) of what it records.
COUNTER_ROLES = ("store", "call_center")
STAFF_ROLES = (*COUNTER_ROLES, "privacy_officer", "auditor")


class Store(Strict):
    """A store whose staff record statements (``staff.toml``); ``id`` is what the ledger's
    evidence ``store_id`` and the audit log carry, ``name`` what people read."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    name: I18nText


class StaffRole(Strict):
    """What a staff role may see of a customer: the attributes its ``purposes`` may use, read
    through the access decision like any app's read."""

    role: str
    purposes: list[str] = []


class Script(Strict):
    """A versioned text that staff read out before recording a statement (a notice at the
    counter, a phone script: UWG § 7a asks for phone consent to be documented). Raise
    ``version`` whenever the text changes; the ledger's evidence ``script_version`` holds
    :attr:`ref` (``<id>.v<version>``)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")
    version: int = Field(ge=1, le=99_999)
    touchpoints: list[Literal["store", "call_center"]]
    purposes: list[str]
    title: I18nText
    text: I18nText

    @property
    def ref(self) -> str:
        return f"{self.id}.v{self.version}"


class Policy(BaseModel):
    """The loaded, cross-checked policy. Immutable for the life of the process."""

    model_config = ConfigDict(frozen=True)

    attributes: dict[str, Attribute]
    purposes: dict[str, Purpose]
    recipients: dict[str, Recipient]
    controller: dict[str, str] = {}
    # staff.toml (optional): stores, what each staff role may see, the scripts staff read out
    stores: dict[str, Store] = {}
    staff_roles: dict[str, StaffRole] = {}
    scripts: dict[str, Script] = {}
