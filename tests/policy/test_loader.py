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
    assert policy.purposes["newsletter"].contact_channels == ["email"]
    assert policy.purposes["analytics"].contact_channels == []
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
            'name = "last_name"',
            'name = "first_name"',
            "attribute 'first_name': duplicate attribute name",
        ),
        (
            "purposes.toml",
            'id = "crm"',
            'id = "newsletter_tool"',
            "recipient 'newsletter_tool': duplicate recipient id",
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
        (
            "attributes.toml",
            "value_labels.not_stated =",
            "value_labels.unknown =",
            "attribute 'gender': value_labels names 'unknown', not one of values",
        ),
        (
            "attributes.toml",
            "value_labels.not_stated =",
            "value_labels.unknown =",
            "attribute 'gender': value_labels has no label for 'not_stated'",
        ),
        (
            "attributes.toml",
            'value_labels.pl = { de = "Polnisch", en = "Polish" }',
            'value_labels.pl = { de = "Polnisch" }',
            "attribute 'preferred_language': missing en translation of value_labels.pl",
        ),
        (
            "purposes.toml",
            'contact_channels = ["email"]',
            'contact_channels = ["fax"]',
            "purpose 'newsletter': contact_channels.0: Input should be 'email'",
        ),
        (
            "purposes.toml",
            'contact_channels = ["email"]',
            'contact_channels = ["email", "email"]',
            "purpose 'newsletter': contact_channels names a channel twice",
        ),
        (
            "purposes.toml",
            'contact_channels = ["push"]',
            'contact_channels = ["email"]',
            "purpose 'push_notifications': contact_channels has 'email' but the purpose uses "
            "no e-mail attribute",
        ),
        (
            "purposes.toml",
            'frequencies = ["weekly", "monthly", "quarterly"]',
            'frequencies = ["weekly", "daily"]',
            "purpose 'newsletter': unknown frequency 'daily' (known: weekly, monthly, quarterly)",
        ),
        (
            "purposes.toml",
            'frequencies = ["weekly", "monthly", "quarterly"]',
            'frequencies = ["weekly", "weekly"]',
            "purpose 'newsletter': frequencies names a frequency twice",
        ),
        (
            "purposes.toml",
            '{ id = "recipes",',
            '{ id = "wine",',
            "purpose 'newsletter': duplicate topic id 'wine'",
        ),
        (
            "purposes.toml",
            'label = { de = "Rezepte", en = "Recipes" }',
            'label = { de = "Rezepte" }',
            "purpose 'newsletter': topic 'recipes': missing en translation of label",
        ),
        (
            "purposes.toml",
            'contact_channels = ["push"]\n',
            'contact_channels = []\nfrequencies = ["weekly"]\n',
            "purpose 'push_notifications': topics and frequencies need contact_channels",
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


@pytest.mark.parametrize("file", ["attributes.toml", "purposes.toml"])
def test_one_toml_syntax_error_is_one_problem_with_line_and_column(tmp_path, file):
    """A stray comma in attributes.toml once gave 40 problems: the TOML error, then an
    'unknown attribute' for every attribute every purpose uses."""
    d = _copy(tmp_path)
    path = d / file
    lines = path.read_text().splitlines(keepends=True)
    row = next(
        i for i, line in enumerate(lines) if line.startswith("title = ") or "label = {" in line
    )
    column = lines[row].index("{") + 1
    lines[row] = lines[row].replace("{", "{,", 1)
    path.write_text("".join(lines))
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert info.value.problems == [
        f"{path}:{row + 1}:{column + 1}: not valid TOML: Invalid initial character for a key part"
    ]
    result = CliRunner().invoke(app, ["policies", "check", str(d)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {info.value.problems[0]}"]


def test_a_file_that_is_not_utf8_is_one_problem(tmp_path):
    d = _copy(tmp_path)
    (d / "purposes.toml").write_bytes(b'[controller]\nname = "Tante \xc4mma"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert info.value.problems == [
        f"{d / 'purposes.toml'}: not valid TOML: not UTF-8 text (byte 28)"
    ]


def test_a_key_of_the_wrong_shape_is_one_problem(tmp_path):
    d = _copy(tmp_path)
    (d / "attributes.toml").write_text('attribute = "email"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert info.value.problems == [
        f"{d / 'attributes.toml'}: 'attribute' must be a list of tables ([[attribute]]), "
        "not a single value"
    ]


def test_a_controller_that_is_not_a_table_is_a_problem_not_a_crash(tmp_path):
    d = _copy(tmp_path)
    path = d / "purposes.toml"
    text = path.read_text()
    start = text.index("[controller]")
    end = text.index("\n\n", start)
    path.write_text(text[:start] + 'controller = "Tante Emma"' + text[end:])
    with pytest.raises(PolicyError) as info:
        load_policy(d)
    assert info.value.problems == [f"{path}: 'controller' must be a table ([controller])"]


def test_serve_with_a_broken_policy_prints_the_problem_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    d = _copy(tmp_path)
    (d / "attributes.toml").write_text("[[attribute]\nname=")
    env = {
        **os.environ,
        "VAULT_DATA_DIR": str(tmp_path / "data"),
        "VAULT_POLICIES_DIR": str(d),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    r = subprocess.run(
        [sys.executable, "-m", "vault.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"policy error: {d / 'attributes.toml'}:1:12: not valid TOML: "
        "Expected ']]' at the end of an array declaration"
    ]
