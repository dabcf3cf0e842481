"""``vault demo``: fictional customers of Tante Emma Online, mixed consents, a demo app client.

All names, addresses and numbers are made up; e-mail addresses use the reserved
``example.de``-style domain ``tante-emma.example``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from sqlmodel import Session

from vault.auth import service as auth_service
from vault.consent import service as consent_service
from vault.customers import service as customers_service
from vault.customers.models import BlindIndex
from vault.db import transaction, utcnow
from vault.preferences import service as preferences_service
from vault.provenance import Caller
from vault.runtime import Runtime
from vault.selfservice import sessions as selfservice_sessions

FIRST = [
    "Anna",
    "Lukas",
    "Mia",
    "Leon",
    "Emma",
    "Finn",
    "Hannah",
    "Paul",
    "Lea",
    "Jonas",
    "Sophie",
    "Elias",
    "Marie",
    "Felix",
    "Lena",
    "Noah",
    "Clara",
    "Ben",
    "Ida",
    "Emil",
    "Greta",
    "Anton",
    "Frieda",
    "Oskar",
    "Mathilda",
    "Karl",
    "Ilse",
    "Jürgen",
    "Ayşe",
    "Mehmet",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Werner",
    "Yilmaz",
    "Kowalski",
    "Schmitt",
    "Krause",
    "Meier",
    "Lehmann",
]
CITIES = [
    ("10115", "Berlin"),
    ("20095", "Hamburg"),
    ("80331", "München"),
    ("50667", "Köln"),
    ("60311", "Frankfurt am Main"),
    ("70173", "Stuttgart"),
    ("40213", "Düsseldorf"),
    ("04109", "Leipzig"),
    ("44135", "Dortmund"),
    ("28195", "Bremen"),
    ("01067", "Dresden"),
    ("30159", "Hannover"),
    ("90402", "Nürnberg"),
    ("24103", "Kiel"),
    ("18055", "Rostock"),
]
STREETS = [
    "Hauptstraße",
    "Schulstraße",
    "Gartenstraße",
    "Bahnhofstraße",
    "Dorfstraße",
    "Bergstraße",
    "Birkenweg",
    "Lindenstraße",
    "Kirchstraße",
    "Waldstraße",
]
CATEGORIES = ["Kaffee", "Käse", "Obst", "Backwaren", "Wein", "Tee", "Schokolade", "Bio"]
CHANNELS = ["web", "app", "store", "call_center", "email"]
DEMO_PURPOSES = ["newsletter", "personalised_offers", "analytics", "order_fulfilment"]
DEMO_SCOPES = ["data:read", "consent:read", "consent:write", "customers:write"]
DEMO_CLIENT_NAME = "Demo app (vault demo)"


@dataclass
class DemoResult:
    created: int
    client_id: str
    client_secret: str
    allowed_customer: UUID
    denied_customer: UUID
    selfservice_url: str = ""


DEMO_BATCH = 200
# who the demo's consents, customers and link are recorded as
DEMO = Caller("cli:demo")


def _profile(i: int, rng: random.Random) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    postal, city = rng.choice(CITIES)
    local = f"{first}.{last}".lower().translate(str.maketrans("äöüßş", "aouss"))
    return {
        "email": f"{local}.{i}@tante-emma.example",
        "phone": f"+49 30 {5550000 + i}",
        "first_name": first,
        "last_name": last,
        "birth_date": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        "street": f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
        "postal_code": postal,
        "city": city,
        "country": "DE",
        "gender": rng.choice(["female", "male", "diverse", "not_stated"]),
        "preferred_language": rng.choice(["de", "de", "de", "en", "tr"]),
        "favourite_categories": ", ".join(rng.sample(CATEGORIES, 2)),
        "loyalty_number": f"TE{10000000 + i}",
        "loyalty_points": rng.randint(0, 5000),
    }


def _consents(rt: Runtime, session: Session, cid: UUID, rng: random.Random, i: int) -> None:
    base = utcnow() - timedelta(days=rng.randint(1, 300))
    kw = dict(
        session=session,
        policy=rt.policy,
        signer=rt.signer,
        settings=rt.settings,
        customer_id=cid,
        by=DEMO,
        late_import=True,  # a history of up to 300 days, beyond the backdating horizon
    )
    # i % 4: 0 granted, 1 withdrawn after a grant, 2 refused, 3 nothing
    if i % 4 in (0, 1):
        consent_service.record_event(
            **kw,
            purpose="personalised_offers",
            status="granted",
            channel=rng.choice(CHANNELS),
            method="checkbox",
            occurred_at=base,
        )
    if i % 4 == 1:
        consent_service.record_event(
            **kw,
            purpose="personalised_offers",
            status="withdrawn",
            channel=rng.choice(CHANNELS),
            method="checkbox",
            occurred_at=base + timedelta(days=1),
        )
    if i % 4 == 2:
        consent_service.record_event(
            **kw,
            purpose="personalised_offers",
            status="refused",
            channel="web",
            method="banner",
            occurred_at=base,
        )
    if i % 3 != 2:  # newsletter: two thirds subscribe, half of them confirm
        result = consent_service.record_event(
            **kw,
            purpose="newsletter",
            status="granted",
            channel=rng.choice(CHANNELS),
            method="form",
            occurred_at=base,
            # demo data: the demo plays the customer pressing the link, so no mail is sent
            token_to_caller=True,
        )
        if i % 2 == 0 and result.confirmation_token:
            consent_service.confirm(  # as the customer pressing the button of the link's page
                session=session,
                policy=rt.policy,
                signer=rt.signer,
                settings=rt.settings,
                token=result.confirmation_token,
                by=Caller(consent_service.customer_actor(cid)),
                on_page=True,
            )
    if i % 5 == 0:
        consent_service.record_event(
            **kw,
            purpose="third_party_ads",
            status="granted",
            channel="app",
            method="toggle",
            occurred_at=base,
        )


def _preferences(rt: Runtime, session: Session, cid: UUID, rng: random.Random, i: int) -> None:
    """Some customers change their filters in the last twelve weeks, at every touchpoint: the
    privacy office's preference charts have a real ledger to count."""
    change: dict = {}
    if i % 4 == 0 and i % 3 == 1:  # granted personalised offers: loyalty points off
        change["topics"] = {"personalised_offers": {"loyalty": False}}
    if i % 6 == 0:  # subscribed and confirmed the newsletter: no wine, once a month
        change["topics"] = {**change.get("topics", {}), "newsletter": {"wine": False}}
        change["frequency"] = {"newsletter": "monthly"}
    if i % 10 == 5:
        change["contact_channels"] = {"push": False}
    when = utcnow() - timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 23))
    if i % 13 == 4:
        change["paused_until"] = when + timedelta(days=30)
    if not change:
        return
    channel = rng.choice(CHANNELS)
    preferences_service.change(
        session=session,
        policy=rt.policy,
        customer_id=cid,
        change=change,
        channel=channel,
        by=DEMO,
        actor="staff:demo" if channel in ("store", "call_center") else "customer",
        now=when,
    )


def run(rt: Runtime, *, customers: int = 1000, seed: int = 1) -> DemoResult:
    rng = random.Random(seed)
    created = 0
    ids: list[UUID] = []
    for start in range(0, customers, DEMO_BATCH):  # one transaction per batch
        with transaction(rt.engine) as session:
            for i in range(start, min(start + DEMO_BATCH, customers)):
                external = f"demo-{i:05d}"
                digest = rt.envelope.blind_index("external_id", external)
                existing = session.get(BlindIndex, ("external_id", digest))
                if existing is not None:
                    ids.append(existing.customer_id)
                    continue
                customer, _ = customers_service.create_customer(
                    session=session,
                    envelope=rt.envelope,
                    policy=rt.policy,
                    attributes=_profile(i, rng),
                    external_id=external,
                )
                _consents(rt, session, customer.id, rng, i)
                _preferences(rt, session, customer.id, rng, i)
                ids.append(customer.id)
                created += 1
    with transaction(rt.engine) as session:
        # one demo client however often the demo runs: a rerun gives it a fresh secret (the
        # secret is shown once, so the old one cannot be printed again)
        existing = auth_service.find_active_client(
            session=session, name=DEMO_CLIENT_NAME, scopes=DEMO_SCOPES, purposes=DEMO_PURPOSES
        )
        if existing is not None:
            client, secret = auth_service.rotate_secret(
                session=session, client_id=existing.id, by=DEMO
            )
        else:
            client, secret = auth_service.create_client(
                session=session,
                policy=rt.policy,
                name=DEMO_CLIENT_NAME,
                scopes=DEMO_SCOPES,
                purposes=DEMO_PURPOSES,
                by=DEMO,
            )
        # a magic link to the self-service page of customer 0 (single use, 15 minutes)
        link = selfservice_sessions.issue_link(
            session=session, settings=rt.settings, customer_id=ids[0], by=DEMO
        )
    # customer 0 granted personalised offers; customer 3 never did
    return DemoResult(created, client.id, secret, ids[0], ids[3 if len(ids) > 3 else 0], link.url)
