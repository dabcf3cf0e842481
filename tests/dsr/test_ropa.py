"""The Art. 30 record: JSON and readable HTML, for dsr:execute or audit:read."""

import re

from tests.factories import auth_headers
from vault.dsr import ropa


def test_record_as_json(client, session, runtime):
    headers = auth_headers(session, runtime, "audit:read")
    r = client.get("/v1/records-of-processing", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["controller"]["name"] == "Tante Emma Online GmbH"
    activities = {a["purpose"]: a for a in doc["activities"]}
    assert set(activities) == set(runtime.policy.purposes)
    analytics = activities["analytics"]
    assert analytics["legal_basis"] == "legitimate_interest"
    assert analytics["legal_basis_article"] == "GDPR Art. 6(1)(f)"
    assert {a["name"]: a["reduced_to"] for a in analytics["attributes"]}["birth_date"] == "year"
    assert analytics["recipients"][0]["kind"] == "processor"
    diet = activities["dietary_recommendations"]
    assert diet["special_categories"] == ["dietary_restrictions"]
    assert diet["legal_basis_article"].startswith("GDPR Art. 9(2)(a)")
    assert activities["tax_records"]["retention_days"] == 3650
    assert activities["newsletter"]["data_subjects"]["en"].startswith("Customers")
    assert activities["third_party_ads"]["third_country_transfers"] == []
    assert any("AES-256-GCM" in m for m in doc["security_measures"])


def test_record_as_html(client, session, runtime):
    headers = {**auth_headers(session, runtime, "dsr:execute"), "Accept": "text/html"}
    r = client.get("/v1/records-of-processing", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Records of processing activities" in r.text
    assert "Statistics and range planning" in r.text and "Tante Emma Online GmbH" in r.text
    r = client.get("/v1/records-of-processing", params={"lang": "de"}, headers=headers)
    assert "Statistik und Sortimentsplanung" in r.text


def test_the_page_reads_in_german_with_labels_and_the_stylesheet(client, session, runtime):
    """Issue 17 item 12: the page had English headings whatever ?lang= said, raw keys
    (legitimate_interest, processor, prefix2, policy_url) and no stylesheet."""
    headers = {**auth_headers(session, runtime, "audit:read"), "Accept": "text/html"}
    r = client.get("/v1/records-of-processing", params={"lang": "de"}, headers=headers)
    html = r.text
    assert '<html lang="de">' in html
    assert "<h1>Verzeichnis von Verarbeitungstätigkeiten (Art. 30 Abs. 1 DSGVO)</h1>" in html
    for heading in ("Verantwortlicher", "Kategorien betroffener Personen", "Technische und"):
        assert f"<h2>{heading}" in html
    for label in (
        "Berechtigtes Interesse (Art. 6 Abs. 1 lit. f DSGVO)",
        "Art. 9 Abs. 2 lit. a und Art. 6 Abs. 1 lit. a DSGVO",
        "Auftragsverarbeiter (Art. 28)",
        "nur das Jahr",
        "Kontaktdaten",
        "Gesundheitsdaten",
        "Datenschutzerklärung",
        "Rechtsordnung</th><td>Deutschland",
        "3650 Tage",
        "AES-256-GCM",
    ):
        assert label in html, label
    text = re.sub(r"<code>[^<]*</code>|<[^>]+>", " ", html)  # purpose ids are shown as code
    for raw in ("legitimate_interest", "legal_obligation", "processor", "prefix2", "policy_url"):
        assert raw not in text, raw
    stylesheet = f'<link rel="stylesheet" href="{runtime.settings.public_url}/me/static/style.css">'
    assert stylesheet in html
    english = client.get("/v1/records-of-processing", headers=headers).text
    assert "<h2>Controller</h2>" in english and "Legitimate interest (GDPR Art. 6(1)(f))" in english
    assert "Verantwortlicher" not in english
    german = ropa.catalogue(ropa.LOCALE_DIR, "de")
    for measure in ropa.SECURITY_MEASURES:  # each measure in German on the German page
        assert german.gettext(measure) != measure and german.gettext(measure) in html
        assert german.gettext(measure) not in english


def test_html_is_escaped():
    record = {
        "controller": {"name": "<script>alert(1)</script>"},
        "activities": [],
        "security_measures": ["a & b"],
    }
    html = ropa.render_html(record)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &amp; b" in html


def test_one_day_is_singular_in_both_languages(runtime):
    """A retention of one day read '1 days' / '1 Tage': the texts are plural-aware now."""
    record = ropa.build(runtime.policy)
    activity = next(a for a in record["activities"] if a["retention_days"])
    activity["retention_days"] = 1
    record["activities"][0]["attributes"][0]["retention_days"] = 1
    english = ropa.render_html(record, "en")
    german = ropa.render_html(record, "de")
    assert "<td>1 day</td>" in english and "1 days" not in english
    assert "deleted 1 day after its last change" in english
    assert "<td>1 Tag</td>" in german and "1 Tage " not in german
    assert "gelöscht 1 Tag nach der letzten Änderung" in german
    assert "3650 Tage" in ropa.render_html(ropa.build(runtime.policy), "de")
