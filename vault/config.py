"""Settings: every knob is an environment variable with the prefix ``VAULT_``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vault import shipped


def parse_ports(value: str) -> frozenset[int]:
    """``"80, 443"`` -> {80, 443}; ValueError for anything but ports 1-65535."""
    ports = set()
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or not 0 < int(item) < 65536:
            raise ValueError(f"not a port (1-65535): {item[:20]!r}")
        ports.add(int(item))
    return frozenset(ports)


SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
DEVELOPMENT_MAIL_FROM = "Consent Vault <consent-vault@localhost>"


@dataclass(frozen=True, repr=False)
class SmtpUrl:
    """``VAULT_SMTP_URL`` taken apart: ``smtp://`` (no TLS), ``smtp+starttls://`` (STARTTLS,
    required), ``smtps://`` (TLS from the first byte), optional ``user:password@``
    (percent-encoded)."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __repr__(self) -> str:  # the password never
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpUrl({self.scheme}://{user}{self.host}:{self.port})"


def parse_smtp_url(url: str) -> SmtpUrl:
    """Parse ``VAULT_SMTP_URL``; ``ValueError`` names what is wrong, never the URL (it may hold
    a password)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SMTP_SCHEMES:
        raise ValueError("the scheme must be smtp://, smtp+starttls:// or smtps://")
    try:
        port = parts.port or SMTP_SCHEMES[scheme]
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("a host name is required, e.g. smtps://mail.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("only scheme, user:password@, host and port are understood")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise ValueError("give both user and password (user:password@host) or neither")
    return SmtpUrl(scheme, parts.hostname, port, username, password)


_NOT_AN_ADDRESS = "not an e-mail address such as 'Tante Emma <service@example.de>'"


def _mail_address(value: str) -> str:
    """A ``From``/``Reply-To`` value: ``addr@host`` or ``Name <addr@host>``, one line."""
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line")
    name, addr = parseaddr(value)
    if not addr or "@" not in addr:
        raise ValueError(_NOT_AN_ADDRESS)
    try:
        Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError):
        raise ValueError(_NOT_AN_ADDRESS) from None
    return value.strip()


class Settings(BaseSettings):
    # hide_input_in_errors: a refused VAULT_SMTP_URL (or key) must not print its password
    model_config = SettingsConfigDict(
        env_prefix="VAULT_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # Only known values: "prod" must not start a vault that silently skips production's checks.
    environment: Literal["development", "production"] = Field(
        "development", description="development | production"
    )
    data_dir: Path = Field(Path("./vault-data"), description="key file and SQLite file live here")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    policies_dir: Path = Field(Path("./policies"), description="attributes.toml, purposes.toml")
    master_keys: SecretStr | None = Field(
        None, description="'id:base64key,id2:base64key' (first is primary) instead of the key file"
    )
    index_key: SecretStr | None = Field(None, description="base64 HMAC key for blind indexes")
    # --- key custody (vault.crypto.pkcs11) and key epochs ---
    key_provider: Literal["file", "pkcs11"] = Field(
        "file", description="file (key file or VAULT_MASTER_KEYS) | pkcs11 (KEKs in an HSM token)"
    )
    pkcs11_module: Path | None = Field(
        None, description="the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so"
    )
    pkcs11_token_label: str | None = Field(None, description="label of the token holding KEKs")
    pkcs11_pin: SecretStr | None = Field(None, description="user PIN of that token")
    key_epoch_days: int | None = Field(
        None, ge=1, description="the worker rotates, rewraps and retires KEKs older than this"
    )
    signing_seed: SecretStr | None = Field(None, description="base64 seed for signing keys")
    public_url: str = Field("http://127.0.0.1:8000", description="base of links and token issuer")
    token_audience: str = "consent-vault"
    token_ttl_seconds: int = Field(900, ge=60, le=86400)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_import_bytes: int = Field(
        67_108_864, ge=1024, description="body limit of POST /v1/customers/import"
    )
    max_import_lines: int = Field(100_000, ge=1, description="lines per import request")
    consent_backdate_days: int = Field(
        30,
        ge=0,
        le=36_500,
        description="consent statements dated further back need late_import: true",
    )
    audit_retention_days: int = Field(
        1095, ge=1, description="'vault audit purge' deletes audit events older than this"
    )
    audit_seal_interval: float = Field(
        0.5, ge=0, description="seconds between background audit chaining (0: off)"
    )
    audit_checkpoint_interval: float = Field(
        10.0, gt=0, description="seconds between signed audit checkpoints"
    )
    # --- events and webhooks (vault.events) ---
    webhook_allowed_hosts: str = Field(
        "",
        description="comma-separated hosts a webhook may use despite a non-public address "
        "(and on any port)",
    )
    webhook_allowed_ports: str = Field(
        "80,443,8080,8443", description="comma-separated ports a webhook URL may name"
    )
    webhook_max_attempts: int = Field(
        12, ge=1, le=100, description="attempts before a delivery is dead-lettered"
    )
    webhook_backoff_base: float = Field(
        5.0, gt=0, description="seconds before the first retry; doubles per attempt, jittered"
    )
    webhook_backoff_max: float = Field(3600.0, gt=0, description="longest wait between attempts")
    webhook_timeout: float = Field(10.0, gt=0, le=120, description="seconds per delivery request")
    webhook_lease_seconds: float = Field(
        60.0, gt=0, description="a claimed delivery is retried by another worker after this"
    )
    worker_poll_interval: float = Field(
        0.2, gt=0, description="seconds the worker sleeps when there is nothing to do"
    )
    worker_expiry_sweep_interval: float = Field(
        60.0, gt=0, description="seconds between the worker's scans for expired consents"
    )
    selfservice_link_ttl_seconds: int = Field(
        900, ge=60, le=86400, description="how long a self-service magic link can be opened"
    )
    selfservice_link_request_seconds: float = Field(
        0.5,
        ge=0,
        le=10,
        description="the least time the /me 'send me a link' form takes to answer, known "
        "address or not, so its answer time does not tell which addresses are customers",
    )
    selfservice_idle_seconds: int = Field(
        1800, ge=60, description="a self-service session ends after this long without a request"
    )
    selfservice_session_max_seconds: int = Field(
        43200, ge=300, description="a self-service session ends this long after it started"
    )
    staff_idle_seconds: int = Field(
        900, ge=60, description="a staff console session ends after this long without a request"
    )
    staff_session_max_seconds: int = Field(
        36000, ge=300, description="a staff console session ends this long after sign-in"
    )
    staff_lockout_failures: int = Field(
        5, ge=1, le=100, description="failed staff sign-ins in a row that lock the account"
    )
    staff_lockout_seconds: int = Field(
        900, ge=60, description="how long a staff account stays locked after those failures"
    )

    forwarded_allow_ips: str = Field(
        "",
        description=(
            "comma-separated proxy addresses or networks whose X-Forwarded-For/-Proto the vault "
            "believes (default: none, the peer address counts); '*' trusts every peer"
        ),
    )

    # --- mail to customers (vault.mail) ---
    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]; unset: "
        "mails go to the mail drop in data_dir/mail (development only)",
    )
    smtp_ca_file: Path | None = Field(
        None, description="CA bundle that verifies the SMTP server (default: the system's)"
    )
    smtp_timeout: float = Field(30.0, gt=0, le=300, description="seconds per SMTP operation")
    mail_from: str | None = Field(
        None, description=f"From of every mail (development default: {DEVELOPMENT_MAIL_FROM})"
    )
    mail_reply_to: str | None = Field(None, description="Reply-To of every mail")
    mail_max_attempts: int = Field(
        8, ge=1, le=100, description="attempts before a mail is given up as failed"
    )
    mail_backoff_base: float = Field(
        60.0, gt=0, description="seconds before the first retry; doubles per attempt, jittered"
    )
    mail_backoff_max: float = Field(21600.0, gt=0, description="longest wait between attempts")
    mail_lease_seconds: float = Field(
        300.0, gt=0, description="a claimed mail is retried by another deliverer after this"
    )
    mail_retention_days: int = Field(
        30, ge=1, description="sent, bounced and failed mails (and drop files) are purged after"
    )
    mail_poll_interval: float = Field(
        1.0, gt=0, description="seconds a mail deliverer sleeps when there is nothing to send"
    )
    mail_in_server: bool | None = Field(
        None,
        description="deliver mails from 'vault serve' too (default: on the embedded default, "
        "i.e. without VAULT_DATABASE_URL; off otherwise: run 'vault worker')",
    )

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            parse_smtp_url(value.get_secret_value())
            return value
        return None

    @field_validator("mail_from", "mail_reply_to")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        return _mail_address(value) if value and value.strip() else None

    # --- rate limits (vault.ratelimit); values in the 'limits' notation: "10/minute" ---
    rate_limit_storage: str = Field(
        "memory://",
        description="memory:// (each process counts alone) or redis://host:6379/0 (shared)",
    )
    rate_limit_token_client: str = Field(
        "30/minute",
        description="failed POST /v1/oauth/token requests per client id (not from its known "
        "addresses)",
    )
    rate_limit_token_ip: str = Field(
        "120/minute", description="POST /v1/oauth/token requests per client address"
    )
    rate_limit_token_failures_ip: str = Field(
        "10/minute", description="failed POST /v1/oauth/token requests per client address"
    )
    rate_limit_link_customer: str = Field(
        "10/hour", description="self-service links issued per customer"
    )
    rate_limit_login_failures_ip: str = Field(
        "20/10 minutes", description="failed magic-link redemptions per client address"
    )
    rate_limit_link_request_address: str = Field(
        "3/hour", description="'send me a link' requests on /me per e-mail address asked for"
    )
    rate_limit_link_request_ip: str = Field(
        "10/hour", description="'send me a link' requests on /me per client address"
    )
    rate_limit_staff_login_ip: str = Field(
        "20/10 minutes", description="failed staff sign-ins at /staff per client address"
    )
    rate_limit_staff_login_name: str = Field(
        "10/10 minutes",
        description="failed staff sign-ins at /staff per account name tried (known or not)",
    )

    @field_validator(
        "rate_limit_token_client",
        "rate_limit_token_ip",
        "rate_limit_token_failures_ip",
        "rate_limit_link_customer",
        "rate_limit_login_failures_ip",
        "rate_limit_link_request_address",
        "rate_limit_link_request_ip",
        "rate_limit_staff_login_ip",
        "rate_limit_staff_login_name",
    )
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate limit such as '10/minute': {value!r}") from None
        return value

    @field_validator("webhook_allowed_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        return ",".join(map(str, sorted(parse_ports(value))))

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        import ipaddress

        entries = [e.strip() for e in value.split(",") if e.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError("not an address, a network such as 10.0.0.0/8, or '*'") from None
        return ",".join(entries)

    @property
    def trusted_proxies(self) -> list[str]:
        return [e for e in self.forwarded_allow_ips.split(",") if e]

    @model_validator(mode="after")
    def _refuse_embedded_keys_in_production(self) -> Settings:
        if (
            self.environment == "production"
            and self.master_keys is None
            and self.key_provider == "file"
        ):
            raise ValueError(
                "VAULT_MASTER_KEYS (or VAULT_KEY_PROVIDER=pkcs11) is required when "
                "VAULT_ENVIRONMENT=production"
            )
        return self

    @model_validator(mode="after")
    def _pkcs11_is_configured(self) -> Settings:
        if self.key_provider == "pkcs11" and not (
            self.pkcs11_module and self.pkcs11_token_label and self.pkcs11_pin
        ):
            raise ValueError(
                "VAULT_KEY_PROVIDER=pkcs11 needs VAULT_PKCS11_MODULE, VAULT_PKCS11_TOKEN_LABEL "
                "and VAULT_PKCS11_PIN"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> Settings:
        # A lease shorter than a request would let a second worker send the same event while
        # the first one is still waiting for the answer.
        if self.webhook_lease_seconds <= self.webhook_timeout:
            raise ValueError("VAULT_WEBHOOK_LEASE_SECONDS must exceed VAULT_WEBHOOK_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _mail_is_configured_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.smtp_url is None:
            raise ValueError(
                "VAULT_SMTP_URL is required when VAULT_ENVIRONMENT=production (the mail drop "
                "is for development)"
            )
        if self.mail_from is None:
            raise ValueError("VAULT_MAIL_FROM is required when VAULT_ENVIRONMENT=production")
        smtp = self.smtp
        assert smtp is not None
        if smtp.scheme == "smtp" and smtp.username and not smtp.loopback:
            raise ValueError(
                "VAULT_SMTP_URL: a password over smtp:// would cross the network in clear; "
                "use smtp+starttls:// or smtps://"
            )
        return self

    @model_validator(mode="after")
    def _mail_lease_outlasts_a_send(self) -> Settings:
        if self.mail_lease_seconds <= 2 * self.smtp_timeout:
            raise ValueError("VAULT_MAIL_LEASE_SECONDS must exceed twice VAULT_SMTP_TIMEOUT")
        return self

    @property
    def smtp(self) -> SmtpUrl | None:
        """``VAULT_SMTP_URL`` parsed (None: the mail drop)."""
        if self.smtp_url is None:
            return None
        return parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def resolved_mail_from(self) -> str:
        return self.mail_from or DEVELOPMENT_MAIL_FROM

    @property
    def mail_delivered_by_server(self) -> bool:
        if self.mail_in_server is not None:
            return self.mail_in_server
        return not self.database_url

    @cached_property
    def resolved_policies_dir(self) -> Path:
        """``./policies`` if it exists here, else the example policies shipped with the code."""
        if self.policies_dir.is_dir() or self.policies_dir != Path("./policies"):
            return self.policies_dir
        return shipped("policies")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'vault.db').resolve()}"

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")
