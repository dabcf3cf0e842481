"""Evidence is an allowlist of typed keys: IPs truncated wherever they appear, nothing else kept,
every other key refused by name (never by value)."""

import pytest

from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        # already truncated (an export imported again) stays; a wider network stays wide
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.77/28", "203.0.113.0/24"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("2001:db8:abcd:12::/64", "2001:db8:abcd::/48"),
    ],
)
def test_ip_addresses_are_truncated(ip, expected):
    assert consent_evidence.clean_evidence({"ip": ip, "gpc": True}) == {"ip": expected, "gpc": True}


def test_every_allowed_key_with_its_typed_value():
    evidence = {
        "ip": "203.0.113.77",
        "client_ip": "2001:db8:abcd:12:1:2:3:4",
        "user_agent": "Mozilla/5.0  (X11; Linux)\tFirefox/133.0",
        "gpc": False,
        "language": "de-DE",
        "tc_string": "CQBdAAAQBdAAAAHABBENBSFgAP_gAAAAAAAAAAAAAAAA.YAAAAAAAAAAA",
        "staff_id": "4711",
        "store_id": "koeln-02",
        "script_version": "2026.3+b1",
    }
    assert consent_evidence.clean_evidence(evidence) == {
        **evidence,
        "ip": "203.0.113.0/24",
        "client_ip": "2001:db8:abcd::/48",
        "user_agent": "Mozilla/5.0 (X11; Linux) Firefox/133.0",
    }


def test_ip_addresses_inside_the_user_agent_are_truncated():
    ua = "Kasse/7 (host 192.168.17.23; via 2001:db8:abcd:12::1) at 12:30:45 Chrome/120.0.0.0"
    assert consent_evidence.clean_evidence({"user_agent": ua}) == {
        "user_agent": "Kasse/7 (host 192.168.17.0/24; via 2001:db8:abcd::/48) at 12:30:45 "
        "Chrome/120.0.0.0"  # a network address already: nothing to cut
    }


@pytest.mark.parametrize("key", ["email", "first_name", "ua", "ref", "note", "attempt", "IP"])
def test_keys_outside_the_allowlist_are_refused_by_name(key):
    with pytest.raises(consent_errors.EvidenceKeyNotAllowed) as err:
        consent_evidence.clean_evidence({key: "erika@example.de"})
    assert err.value.code == "evidence_key_not_allowed"
    assert err.value.extra == {"key": key} and "erika" not in err.value.detail


def test_a_key_that_is_no_identifier_is_not_echoed():
    with pytest.raises(consent_errors.EvidenceKeyNotAllowed) as err:
        consent_evidence.clean_evidence({"erika@example.de": "x"})
    assert "erika" not in err.value.detail and err.value.extra == {}


@pytest.mark.parametrize(
    ("evidence", "error"),
    [
        ({"user_agent": "write to erika@example.de"}, consent_errors.EvidenceContainsContactData),
        ({"user_agent": "+49 30 1234567"}, consent_errors.EvidenceContainsContactData),
        ({"user_agent": "x" * 513}, consent_errors.InvalidEvidence),
        ({"user_agent": "a\x00b"}, consent_errors.InvalidEvidence),
        ({"user_agent": 7}, consent_errors.InvalidEvidence),
        ({"ip": "300.1.1.1"}, consent_errors.InvalidEvidence),
        ({"ip": 3232235777}, consent_errors.InvalidEvidence),
        ({"gpc": "true"}, consent_errors.InvalidEvidence),
        ({"gpc": 1}, consent_errors.InvalidEvidence),
        ({"language": "Deutsch (Schweiz)"}, consent_errors.InvalidEvidence),
        ({"tc_string": "CQBd AAAQ"}, consent_errors.InvalidEvidence),
        ({"tc_string": "C" * 2049}, consent_errors.InvalidEvidence),
        ({"tc_string": "CQBd.203.0.113.77.YAAA"}, consent_errors.InvalidEvidence),
        ({"staff_id": "Erika Mustermann"}, consent_errors.InvalidEvidence),
        ({"store_id": "10.1.2.3"}, consent_errors.InvalidEvidence),
        ({"script_version": {"v": 1}}, consent_errors.InvalidEvidence),
        (["ip"], consent_errors.InvalidEvidence),
    ],
)
def test_allowed_keys_refuse_values_outside_their_type(evidence, error):
    with pytest.raises(error) as err:
        consent_evidence.clean_evidence(evidence)
    if isinstance(evidence, dict):
        (key,) = evidence
        assert err.value.extra == {"key": key}
        if isinstance(evidence[key], str) and len(evidence[key]) > 5:
            assert evidence[key][:20] not in err.value.detail
