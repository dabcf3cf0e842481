"""Evidence is cleaned before it is stored: truncated IPs, no contact data, flat and small."""

import pytest

from vault.consent import errors as consent_errors
from vault.consent import evidence as consent_evidence


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
    ],
)
def test_ip_addresses_are_truncated(ip, expected):
    assert consent_evidence.clean_evidence({"ip": ip, "gpc": True}) == {"ip": expected, "gpc": True}


@pytest.mark.parametrize(
    ("evidence", "error"),
    [
        ({"email": "x"}, consent_errors.EvidenceContainsContactData),
        ({"customer_phone": "x"}, consent_errors.EvidenceContainsContactData),
        ({"first_name": "Erika"}, consent_errors.EvidenceContainsContactData),
        ({"note": "write to erika@example.de"}, consent_errors.EvidenceContainsContactData),
        ({"note": "+49 30 1234567"}, consent_errors.EvidenceContainsContactData),
        ({"nested": {"a": 1}}, consent_errors.InvalidEvidence),
        ({"ip": "300.1.1.1"}, consent_errors.InvalidEvidence),
        ({"ua": "x" * 600}, consent_errors.InvalidEvidence),
        ({f"k{i}": i for i in range(21)}, consent_errors.InvalidEvidence),
    ],
)
def test_evidence_rejects_contact_data_and_structure(evidence, error):
    with pytest.raises(error):
        consent_evidence.clean_evidence(evidence)
