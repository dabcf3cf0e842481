"""The evidence a self-service action records: no contact data, the IP checked."""

from __future__ import annotations

from vault.selfservice import actions


def test_evidence_keeps_no_contact_data_and_checks_the_ip():
    ev = actions.page_evidence(
        user_agent="x" * 1000, client_ip="2001:db8:1234:5678::1", language="en", gpc=True
    )
    assert len(ev["user_agent"]) == actions.MAX_USER_AGENT
    assert ev["ip"] == "2001:db8:1234:5678::1"  # truncated by the consent service on write
    assert ev["gpc"] is True and ev["language"] == "en"
    odd = actions.page_evidence(
        user_agent="mail me: someone@example.org", client_ip="testclient", language="de", gpc=False
    )
    assert odd["user_agent"] == "(withheld)"
    assert "ip" not in odd
