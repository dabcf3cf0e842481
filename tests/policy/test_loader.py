import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vault import PROJECT_ROOT
from vault.cli import app
from vault.policy import LegalBasis, PolicyError, load_policy

EXAMPLE = PROJECT_ROOT / "policies"


def test_example_policies_cover_the_product_card():
    policy = load_policy(EXAMPLE)
    assert len(policy.attributes) >= 12 and len(policy.purposes) >= 8
    assert {p.legal_basis for p in policy.purposes.values()} == set(LegalBasis)
    assert any(a.special_category for a in policy.attributes.values())
    categories = {a.category.value for a in policy.attributes.values()}
    assert {"contact", "identity", "demographic", "preference", "loyalty"} <= categories
    for pid in (
        "newsletter",
        "personalised_offers",
        "third_party_ads",
        "analytics",
        "order_fulfilment",
        "tax_records",
    ):
        assert pid in policy.purposes
    assert policy.purposes["newsletter"].double_opt_in
    assert policy.purposes["third_party_ads"].gpc_opt_out
    assert policy.purposes["analytics"].legal_basis is LegalBasis.LEGITIMATE_INTEREST
    assert {"email", "first_name"} <= set(policy.purposes["newsletter"].attributes)
    for p in policy.purposes.values():
        assert p.title.de and p.title.en and p.description.de and p.description.en


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(EXAMPLE, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "expect"),
    [
        (
            "purposes.toml",
            'attributes = ["email", "first_name", "preferred_language", "newsletter_html"]',
            'attributes = ["emial", "first_name"]',
            "purpose 'newsletter': unknown attribute 'emial'",
        ),
        (
            "purposes.toml",
            'legal_basis = "consent"\nexplicit_consent = true',
            'legal_basis = "legitimate_interest"',
            "purpose 'dietary_recommendations': special-category attribute 'dietary_restrictions'",
        ),
        (
            "purposes.toml",
            'id = "push_notifications"',
            'id = "newsletter"',
            "purpose 'newsletter': duplicate purpose id",
        ),
        (
            "attributes.toml",
            'label = { de = "Vorname", en = "First name" }',
            'label = { de = "Vorname" }',
            "attribute 'first_name': missing en translation of label",
        ),
        (
            "purposes.toml",
            'title = { de = "Newsletter", en = "Newsletter" }',
            'title = { en = "Newsletter" }',
            "purpose 'newsletter': missing de translation of title",
        ),
        (
            "purposes.toml",
            'reduce = { postal_code = "prefix2" }',
            'reduce = { email = "year" }',
            "purpose 'third_party_ads': reduction 'year' does not fit attribute 'email'",
        ),
        (
            "purposes.toml",
            'legal_basis = "legal_obligation"',
            'legal_basis = "because"',
            "purpose 'tax_records': legal_basis",
        ),
    ],
)
def test_check_names_file_entry_and_problem(tmp_path, file, old, new, expect):
    d = _copy(tmp_path)
    _edit(d / file, old, new)
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert any(expect in p and str(d / file) in p for p in info.value.problems), info.value.problems
    result = CliRunner().invoke(app, ["policies", "check", str(d)])
    assert result.exit_code == 1
    assert expect in result.output


def test_check_cli_ok_on_example():
    result = CliRunner().invoke(app, ["policies", "check", str(EXAMPLE)])
    assert result.exit_code == 0 and result.output.startswith("ok:")


def test_invalid_toml_is_reported(tmp_path):
    d = _copy(tmp_path)
    (d / "attributes.toml").write_text("[[attribute]\nname=")
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert "attributes.toml: not valid TOML" in info.value.problems[0]
