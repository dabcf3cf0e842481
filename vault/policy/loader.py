"""Load and cross-check the policy files; every problem names file, entry and what is wrong."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vault.policy.models import (
    REDUCTION_TYPES,
    STAFF_ROLES,
    Attribute,
    AttributeType,
    ContactChannel,
    Frequency,
    LegalBasis,
    Policy,
    Purpose,
    Recipient,
    Script,
    StaffRole,
    Store,
)

M = TypeVar("M", bound=BaseModel)

ATTRIBUTES_FILE = "attributes.toml"
PURPOSES_FILE = "purposes.toml"
STAFF_FILE = "staff.toml"  # optional: stores, staff roles, scripts


class PolicyError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# tomllib (3.11) puts the position only into its message: "... (at line 3, column 9)".
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The parsed file, or None after one problem naming the file (and, for a syntax error,
    the line and column as ``file:line:column``, the form editors and CI annotations read)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not valid TOML: not UTF-8 text (byte {exc.start + 1})")
    except OSError as exc:
        problems.append(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_POSITION.search(message)
        if at is not None:
            where = f"{path}:{at.group(1)}:{at.group(2)}"
            message = message[: at.start()]
        else:
            where = str(path)
        problems.append(f"{where}: not valid TOML: {message}")
    return None


def _tables(doc: dict[str, Any], key: str, path: Path, problems: list[str]) -> list[Any]:
    """``[[key]]`` entries; anything else under that key is one problem, not one per item."""
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        problems.append(f"{path}: {key!r} must be a list of tables ([[{key}]]), not a single value")
        return []
    return entries


def _parse(
    model: type[M], raw: Any, path: Path, kind: str, key: str, index: int, problems: list[str]
) -> M | None:
    label = raw.get(key) if isinstance(raw, dict) else None
    where = f"{path}: {kind} {label!r}" if label else f"{path}: {kind} #{index + 1}"
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(entry)"
            problems.append(f"{where}: {field}: {err['msg']}")
    return None


def _entries(
    model: type[M],
    entries: list[Any],
    path: Path,
    kind: str,
    key: str,
    problems: list[str],
    duplicate: str,
) -> Iterator[tuple[str, M]]:
    """Each entry that parses as ``model``, with its ``where`` (file and ``kind`` with the
    entry's ``key``); a second entry with the same ``key`` is the problem ``duplicate``."""
    seen: set[Any] = set()
    for i, raw in enumerate(entries):
        entry = _parse(model, raw, path, kind, key, i, problems)
        if entry is None:
            continue
        ident = getattr(entry, key)
        where = f"{path}: {kind} {ident!r}"
        if ident in seen:
            problems.append(f"{where}: {duplicate}")
        seen.add(ident)
        yield where, entry


def _check_i18n(where: str, fields: dict[str, Any], problems: list[str]) -> None:
    for name, text in fields.items():
        for lang in text.missing():
            problems.append(f"{where}: missing {lang} translation of {name}")


def _check_contact_rules(where: str, pur: Purpose, problems: list[str]) -> None:
    """Topics and frequencies (the customer's preferences, vault.preferences): unique topic
    ids with de/en labels and descriptions, known frequency names, each once, and both only on
    a purpose that contacts the customer (``contact_channels``)."""
    seen: set[str] = set()
    for topic in pur.topics:
        if topic.id in seen:
            problems.append(f"{where}: duplicate topic id {topic.id!r}")
        seen.add(topic.id)
        _check_i18n(
            f"{where}: topic {topic.id!r}",
            {"label": topic.label, "description": topic.description},
            problems,
        )
    known = [f.value for f in Frequency]
    for name in pur.frequencies:
        if name not in known:
            problems.append(f"{where}: unknown frequency {name[:32]!r} (known: {', '.join(known)})")
    if len(set(pur.frequencies)) != len(pur.frequencies):
        problems.append(f"{where}: frequencies names a frequency twice")
    if (pur.topics or pur.frequencies) and not pur.contact_channels:
        problems.append(f"{where}: topics and frequencies need contact_channels")


def load_policy(directory: Path) -> Policy:
    """Read ``attributes.toml`` and ``purposes.toml`` from ``directory``; raise
    :class:`PolicyError` listing every problem found."""
    problems: list[str] = []
    a_path, p_path = directory / ATTRIBUTES_FILE, directory / PURPOSES_FILE
    a_doc, p_doc = _read_toml(a_path, problems), _read_toml(p_path, problems)
    if a_doc is None or p_doc is None:
        # A file that cannot be read or parsed is the one problem to report: checking the other
        # file against nothing would add a wrong "unknown attribute" for every reference.
        raise PolicyError(problems)
    a_entries = _tables(a_doc, "attribute", a_path, problems)
    r_entries = _tables(p_doc, "recipient", p_path, problems)
    p_entries = _tables(p_doc, "purpose", p_path, problems)
    if problems:  # the same for a file of the wrong shape
        raise PolicyError(problems)

    attributes: dict[str, Attribute] = {}
    for where, attr in _entries(
        Attribute, a_entries, a_path, "attribute", "name", problems, "duplicate attribute name"
    ):
        _check_i18n(where, {"label": attr.label}, problems)
        if attr.type is AttributeType.ENUM and not attr.values:
            problems.append(f"{where}: an enum attribute needs a non-empty 'values' list")
        if attr.value_labels:
            if attr.type is not AttributeType.ENUM:
                problems.append(f"{where}: value_labels only apply to enum attributes")
            for value in attr.value_labels:
                if value not in attr.values:
                    problems.append(f"{where}: value_labels names {value!r}, not one of values")
            for value in attr.values:
                if value not in attr.value_labels:
                    problems.append(f"{where}: value_labels has no label for {value!r}")
            _check_i18n(
                where,
                {f"value_labels.{v}": text for v, text in attr.value_labels.items()},
                problems,
            )
        if attr.pattern is not None:
            try:
                re.compile(attr.pattern)
            except re.error as exc:
                problems.append(f"{where}: pattern is not a valid regular expression: {exc}")
        if attr.name == "external_id":
            problems.append(f"{where}: 'external_id' is reserved for the customer's external id")
        attributes[attr.name] = attr
    if a_doc and not attributes and not problems:
        problems.append(f"{a_path}: defines no [[attribute]]")

    recipients: dict[str, Recipient] = {}
    for where, rec in _entries(
        Recipient, r_entries, p_path, "recipient", "id", problems, "duplicate recipient id"
    ):
        _check_i18n(where, {"name": rec.name}, problems)
        recipients[rec.id] = rec

    purposes: dict[str, Purpose] = {}
    for where, pur in _entries(
        Purpose, p_entries, p_path, "purpose", "id", problems, "duplicate purpose id"
    ):
        _check_i18n(where, {"title": pur.title, "description": pur.description}, problems)
        if pur.reconsent:
            _check_i18n(where, {"changes": pur.changes}, problems)
        for name in pur.attributes:
            attr = attributes.get(name)
            if attr is None:
                problems.append(f"{where}: unknown attribute {name!r}")
                continue
            if attr.special_category and not (
                pur.legal_basis is LegalBasis.CONSENT and pur.explicit_consent
            ):
                problems.append(
                    f"{where}: special-category attribute {name!r} needs legal_basis = "
                    "'consent' with explicit_consent = true (GDPR Art. 9(2)(a))"
                )
        for name, reduction in pur.reduce.items():
            if name not in pur.attributes:
                problems.append(f"{where}: reduce names {name!r}, which the purpose does not use")
            elif name in attributes and attributes[name].type not in REDUCTION_TYPES[reduction]:
                problems.append(
                    f"{where}: reduction {reduction.value!r} does not fit attribute {name!r} "
                    f"of type {attributes[name].type.value!r}"
                )
        for rid in pur.recipients:
            if rid not in recipients:
                problems.append(f"{where}: unknown recipient {rid!r}")
        if len(set(pur.contact_channels)) != len(pur.contact_channels):
            problems.append(f"{where}: contact_channels names a channel twice")
        if ContactChannel.EMAIL in pur.contact_channels and not any(
            name in attributes and attributes[name].type is AttributeType.EMAIL
            for name in pur.attributes
        ):
            problems.append(
                f"{where}: contact_channels has 'email' but the purpose uses no e-mail attribute"
            )
        _check_contact_rules(where, pur, problems)
        consent_only = {
            "double_opt_in": pur.double_opt_in,
            "consent_ttl_days": pur.consent_ttl_days is not None,
            "reconsent": pur.reconsent,
            "gpc_opt_out": pur.gpc_opt_out,
            "explicit_consent": pur.explicit_consent,
        }
        if not pur.needs_consent:
            for flag, on in consent_only.items():
                if on:
                    problems.append(f"{where}: {flag} only applies to consent purposes")
        purposes[pur.id] = pur
    if p_doc and not purposes and not problems:
        problems.append(f"{p_path}: defines no [[purpose]]")

    controller_doc = p_doc.get("controller", {})
    if not isinstance(controller_doc, dict):
        problems.append(f"{p_path}: 'controller' must be a table ([controller])")
        controller_doc = {}
    if problems:
        raise PolicyError(problems)
    stores, staff_roles, scripts = _load_staff(directory / STAFF_FILE, attributes, purposes)
    controller = {str(k): str(v) for k, v in controller_doc.items()}
    return Policy(
        attributes=attributes,
        purposes=purposes,
        recipients=recipients,
        controller=controller,
        stores=stores,
        staff_roles=staff_roles,
        scripts=scripts,
    )


def _load_staff(
    path: Path, attributes: dict[str, Attribute], purposes: dict[str, Purpose]
) -> tuple[dict[str, Store], dict[str, StaffRole], dict[str, Script]]:
    """``staff.toml``: ``[[store]]``, ``[[staff_role]]`` and ``[[script]]``. The file is
    optional (a vault without a staff console needs none); when present it is checked as
    strictly as the others."""
    if not path.exists():
        return {}, {}, {}
    problems: list[str] = []
    doc = _read_toml(path, problems)
    if doc is None:
        raise PolicyError(problems)
    s_entries = _tables(doc, "store", path, problems)
    r_entries = _tables(doc, "staff_role", path, problems)
    c_entries = _tables(doc, "script", path, problems)
    if problems:
        raise PolicyError(problems)

    stores: dict[str, Store] = {}
    for where, store in _entries(
        Store, s_entries, path, "store", "id", problems, "duplicate store id"
    ):
        _check_i18n(where, {"name": store.name}, problems)
        stores[store.id] = store

    roles: dict[str, StaffRole] = {}
    for where, role in _entries(
        StaffRole, r_entries, path, "staff_role", "role", problems, "duplicate staff_role"
    ):
        if role.role not in STAFF_ROLES:
            problems.append(f"{where}: unknown role; one of {', '.join(STAFF_ROLES)}")
        for pid in role.purposes:
            pur = purposes.get(pid)
            if pur is None:
                problems.append(f"{where}: unknown purpose {pid!r}")
            elif any(attributes[a].special_category for a in pur.attributes if a in attributes):
                # staff at a counter never read health data off a screen
                problems.append(f"{where}: purpose {pid!r} uses special-category attributes")
        roles[role.role] = role

    scripts: dict[str, Script] = {}
    duplicate_script = (
        "duplicate script id (keep one version per script: the ledger names the version it "
        "was read in)"
    )
    for where, script in _entries(
        Script, c_entries, path, "script", "id", problems, duplicate_script
    ):
        _check_i18n(where, {"title": script.title, "text": script.text}, problems)
        if not script.touchpoints:
            problems.append(f"{where}: touchpoints must name 'store' and/or 'call_center'")
        if len(set(script.touchpoints)) != len(script.touchpoints):
            problems.append(f"{where}: touchpoints names a touchpoint twice")
        if not script.purposes:
            problems.append(f"{where}: a script must cover at least one purpose")
        for pid in script.purposes:
            pur = purposes.get(pid)
            if pur is None:
                problems.append(f"{where}: unknown purpose {pid!r}")
            elif not pur.needs_consent:
                problems.append(f"{where}: purpose {pid!r} does not rest on consent")
        scripts[script.id] = script
    if problems:
        raise PolicyError(problems)
    return stores, roles, scripts
