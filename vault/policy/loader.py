"""Load and cross-check the policy files; every problem names file, entry and what is wrong."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vault.policy.models import (
    REDUCTION_TYPES,
    Attribute,
    AttributeType,
    LegalBasis,
    Policy,
    Purpose,
    Recipient,
)

M = TypeVar("M", bound=BaseModel)

ATTRIBUTES_FILE = "attributes.toml"
PURPOSES_FILE = "purposes.toml"


class PolicyError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
    return {}


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


def _check_i18n(where: str, fields: dict[str, Any], problems: list[str]) -> None:
    for name, text in fields.items():
        for lang in text.missing():
            problems.append(f"{where}: missing {lang} translation of {name}")


def load_policy(directory: Path) -> Policy:
    """Read ``attributes.toml`` and ``purposes.toml`` from ``directory``; raise
    :class:`PolicyError` listing every problem found."""
    problems: list[str] = []
    a_path, p_path = directory / ATTRIBUTES_FILE, directory / PURPOSES_FILE
    a_doc, p_doc = _read_toml(a_path, problems), _read_toml(p_path, problems)

    attributes: dict[str, Attribute] = {}
    for i, raw in enumerate(a_doc.get("attribute", [])):
        attr = _parse(Attribute, raw, a_path, "attribute", "name", i, problems)
        if attr is None:
            continue
        where = f"{a_path}: attribute {attr.name!r}"
        if attr.name in attributes:
            problems.append(f"{where}: duplicate attribute name")
        _check_i18n(where, {"label": attr.label}, problems)
        if attr.type is AttributeType.ENUM and not attr.values:
            problems.append(f"{where}: an enum attribute needs a non-empty 'values' list")
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
    for i, raw in enumerate(p_doc.get("recipient", [])):
        rec = _parse(Recipient, raw, p_path, "recipient", "id", i, problems)
        if rec is None:
            continue
        where = f"{p_path}: recipient {rec.id!r}"
        if rec.id in recipients:
            problems.append(f"{where}: duplicate recipient id")
        _check_i18n(where, {"name": rec.name}, problems)
        recipients[rec.id] = rec

    purposes: dict[str, Purpose] = {}
    for i, raw in enumerate(p_doc.get("purpose", [])):
        pur = _parse(Purpose, raw, p_path, "purpose", "id", i, problems)
        if pur is None:
            continue
        where = f"{p_path}: purpose {pur.id!r}"
        if pur.id in purposes:
            problems.append(f"{where}: duplicate purpose id")
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

    if problems:
        raise PolicyError(problems)
    controller = {str(k): str(v) for k, v in p_doc.get("controller", {}).items()}
    return Policy(
        attributes=attributes, purposes=purposes, recipients=recipients, controller=controller
    )
