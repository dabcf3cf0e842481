"""Issue 17: invisible and bidi control characters are refused in every text value, at every
door (API create and rectify, lookup, bulk import), and attribute names the policy does not
define are never echoed."""

from __future__ import annotations

import json
import sys
import unicodedata

import pytest
from sqlalchemy import func, select

from tests.factories import auth_headers, create_customer, unique_email
from vault.customers.models import BlindIndex, Customer, CustomerValue
from vault.policy.errors import InvalidCharacters
from vault.policy.values import _INVISIBLE, has_invisible, normalise

# What a person sees as "Anna" or "Müller", and what the vault stored before issue 17.
HIDDEN = {
    "zero-width space": "An\u200bna",
    "zero-width non-joiner": "An\u200cna",
    "zero-width joiner": "An\u200dna",
    "left-to-right mark": "Anna\u200e",
    "right-to-left mark": "\u200fAnna",
    "left-to-right embedding": "\u202aAnna",
    "right-to-left override": "Anna\u202e",
    "pop directional formatting": "An\u202cna",
    "left-to-right isolate": "\u2066Anna\u2069",
    "first strong isolate": "\u2068Anna",
    "byte order mark": "\ufeffAnna",
    "word joiner": "An\u2060na",
    "soft hyphen": "Mül\xadler",
    "Arabic letter mark": "An\u061cna",
    "tag character": "Anna\U000e0041",
    "C1 control (NEL)": "An\x85na",
    "information separator (folded by str.split)": "An\x1fna",
    "escape": "An\x1bna",
    "NUL": "An\x00na",
}

# The same as JSON text on the wire, including what json cannot turn into UTF-8.
SURROGATE = '"An\\ud800na"'


def test_the_refused_set_is_every_control_format_and_surrogate_character():
    """The spelled-out ranges cover Cc (but tab, LF, CR), Cf and Cs of this Python's Unicode
    table; anything else they match is unassigned (room for format characters to come)."""
    wanted, extra = [], []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        category = unicodedata.category(ch)
        refused = category in ("Cc", "Cf", "Cs") and ch not in "\t\n\r"
        matched = _INVISIBLE.match(ch) is not None
        if refused and not matched:
            wanted.append(hex(cp))
        elif matched and not refused and category != "Cn":
            extra.append(hex(cp))
    assert wanted == [] and extra == []


@pytest.mark.parametrize("value", HIDDEN.values(), ids=HIDDEN.keys())
def test_normalise_refuses_invisible_characters_in_every_text_type(runtime, value):
    assert has_invisible(value)
    attrs = runtime.policy.attributes
    for name, raw in [
        ("first_name", value),
        ("city", value),
        ("email", f"{value.lower()}@example.de"),
        ("postal_code", f"10{value}115"),
    ]:
        with pytest.raises(InvalidCharacters) as err:
            normalise(attrs[name], raw)
        assert err.value.status == 422 and err.value.code == "invalid_characters"
        assert err.value.extra == {"attribute": name}
        assert value not in err.value.detail


def test_tab_and_newline_are_still_whitespace_that_is_folded(runtime):
    assert normalise(runtime.policy.attributes["city"], "Bad\tHomburg\r\nvor der Höhe") == (
        "Bad Homburg vor der Höhe"
    )
    # ordinary letters of other scripts are not "invisible"
    for name in ("Zoë", "Łukasz", "Ἀθηνᾶ", "محمد", "李小龍", "Nguyễn"):
        assert normalise(runtime.policy.attributes["first_name"], name) == name


@pytest.fixture
def writer(session, runtime):
    headers = auth_headers(session, runtime, "customers:write")
    session.rollback()
    return headers


def _counts(session):
    out = tuple(
        session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (Customer, CustomerValue, BlindIndex)
    )
    session.rollback()
    return out


def _post_raw(client, writer, method: str, url: str, text: str):
    return client.request(
        method, url, content=text.encode(), headers={**writer, "content-type": "application/json"}
    )


@pytest.mark.parametrize(
    "value", [json.dumps(v) for v in HIDDEN.values()] + [SURROGATE], ids=[*HIDDEN, "surrogate"]
)
def test_every_api_door_refuses_them_with_422_and_stores_nothing(
    client, session, runtime, writer, value
):
    """Create, rectify, the external id and lookup. A lone surrogate was a 500 (it cannot be
    encoded for encryption or the blind index)."""
    existing = create_customer(session, runtime, last_name="Mustermann")
    session.rollback()
    before = _counts(session)
    answers = {
        "create first_name": _post_raw(
            client, writer, "POST", "/v1/customers", f'{{"attributes": {{"first_name": {value}}}}}'
        ),
        "create external_id": _post_raw(
            client,
            writer,
            "POST",
            "/v1/customers",
            f'{{"attributes": {{"email": "{unique_email()}"}}, "external_id": {value}}}',
        ),
        "rectify last_name": _post_raw(
            client,
            writer,
            "PATCH",
            f"/v1/customers/{existing.id}",
            f'{{"attributes": {{"last_name": {value}}}}}',
        ),
        "lookup external_id": _post_raw(
            client,
            writer,
            "POST",
            "/v1/customers/lookup",
            f'{{"attribute": "external_id", "value": {value}}}',
        ),
    }
    # pydantic already refuses a lone surrogate in a str field (validation_error); in the
    # attributes object (any JSON value) it reached the encryption and failed there
    codes = {"invalid_characters"} | ({"validation_error"} if value == SURROGATE else set())
    for door, r in answers.items():
        assert r.status_code == 422, (door, r.status_code, r.text)
        assert r.json()["error"] in codes, (door, r.text)
        if door.endswith(("first_name", "last_name")):
            assert r.json()["error"] == "invalid_characters", (door, r.text)
        assert "Anna" not in r.text and "ller" not in r.text, door  # the value is not echoed
    assert _counts(session) == before


def test_the_import_refuses_them_per_line_and_keeps_the_good_lines(client, session, runtime):
    headers = auth_headers(session, runtime, "customers:write")
    session.rollback()
    good = unique_email("good")
    lines = [
        json.dumps({"attributes": {"email": good, "first_name": "Anna"}}),
        json.dumps({"attributes": {"email": unique_email(), "first_name": "An\u200bna"}}),
        json.dumps({"attributes": {"email": unique_email(), "last_name": "Anna\u202e"}}),
        json.dumps({"attributes": {"email": unique_email()}, "external_id": "LEG\u2066ACY"}),
        '{"attributes": {"email": "' + unique_email() + '", "city": "An\\ud800na"}}',
    ]
    r = client.post(
        "/v1/customers/import",
        content=("\n".join(lines) + "\n").encode(),
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 1 and report["rejected"] == 4
    errors = {e["line"]: (e["error"], e.get("attribute")) for e in report["errors"]}
    assert errors[2] == ("invalid_characters", "first_name")
    assert errors[3] == ("invalid_characters", "last_name")
    assert errors[4] == ("invalid_characters", "external_id")
    # a lone surrogate is not JSON orjson accepts: the line is refused as invalid JSON
    assert errors[5][0] in ("invalid_characters", "invalid_json")
    assert "Anna" not in r.text and "LEG" not in r.text


# --- unknown attribute names are never echoed --------------------------------------------------

SECRET_KEY = "erika.geheim@example.de"  # an e-mail address sent as an attribute name


def test_unknown_attribute_names_are_never_echoed_by_the_api(client, session, runtime, writer):
    existing = create_customer(session, runtime)
    session.rollback()
    answers = [
        client.post("/v1/customers", json={"attributes": {SECRET_KEY: "x"}}, headers=writer),
        client.patch(
            f"/v1/customers/{existing.id}",
            json={"attributes": {"first_name": "Eva", SECRET_KEY: None}},
            headers=writer,
        ),
    ]
    for r in answers:
        assert r.status_code == 422, r.text
        assert r.json() == {
            "error": "unknown_attribute",
            "detail": "The request names an attribute the policy does not define.",
        }
    r = client.post(
        "/v1/customers/lookup", json={"attribute": SECRET_KEY, "value": "x"}, headers=writer
    )
    assert r.status_code == 422 and r.json()["error"] == "attribute_not_searchable"
    assert "erika" not in r.text and "email" in r.json()["detail"]  # lists what is searchable
    # an attribute sent at the top level instead of inside "attributes"
    r = client.post("/v1/customers", json={SECRET_KEY: "x"}, headers=writer)
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "extra_forbidden"
    assert "erika" not in r.text


def test_unknown_attribute_names_and_keys_are_never_echoed_by_the_import(client, session, runtime):
    headers = auth_headers(session, runtime, "customers:write")
    session.rollback()
    lines = [
        json.dumps({"attributes": {"email": unique_email(), SECRET_KEY: "x"}}),
        json.dumps({"attributes": {"email": unique_email()}, SECRET_KEY: "x"}),
    ]
    r = client.post(
        "/v1/customers/import",
        content=("\n".join(lines) + "\n").encode(),
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    errors = {e["line"]: e for e in r.json()["errors"]}
    assert errors[1]["error"] == "unknown_attribute" and errors[1].get("attribute") is None
    assert errors[2]["error"] == "invalid_json"
    assert "erika" not in r.text.lower()
