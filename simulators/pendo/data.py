"""Generate a plausible Pendo subscription: accounts, visitors' daily activity, features.

Deterministic for a seed. Account ids are the Salesforce-style ids the Zendesk generator uses
(`001SIM000000000001`), so a demo joins usage to accounts and tickets. Activity covers `days`
days up to and including today (today's rows are partial, as in production).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from pmsync.simulators.pendo.app import PendoSimulator

FEATURES = (
    ("feat-export-csv", "Export CSV"),
    ("feat-dashboards", "Dashboards"),
    ("feat-sso-setup", "SSO Setup"),
)


@dataclass
class GeneratedPendo:
    """What was generated, for tests to compute expectations from."""

    accounts: list[str] = field(default_factory=list)
    features: dict[str, str] = field(default_factory=dict)


def account_id(n: int) -> str:
    return f"001SIM{n:012d}"


def generate(
    sim: PendoSimulator,
    *,
    accounts: int = 30,
    days: int = 100,
    visitors_per_account: tuple[int, int] = (2, 6),
    activity: float = 0.5,
    seed: int = 5,
) -> GeneratedPendo:
    """Fill `sim`; account updates are spread over the last `days` days."""
    rng = random.Random(seed)
    out = GeneratedPendo()
    sim.custom_account_fields = {"planlevel": "string", "arr": "number", "salesforceid": "string"}
    for feature_id, name in FEATURES:
        sim.add_feature(feature_id, name)
        out.features[name] = feature_id
    now_ms = sim.now_ms()
    today = sim.today()
    for n in range(1, accounts + 1):
        ident = account_id(n)
        sim.put_account(
            ident,
            name=f"Customer {n} Inc.",
            custom={
                "planlevel": rng.choice(["team", "pro", "enterprise"]),
                "arr": rng.choice([12_000, 48_000, 120_000]),
                "salesforceid": ident,
            },
            at_ms=now_ms - rng.randint(3_600_000, days * 86_400_000),
        )
        out.accounts.append(ident)
        visitors = [f"{ident}-v{v}" for v in range(rng.randint(*visitors_per_account))]
        for offset in range(days):
            day = today - timedelta(days=offset)
            for visitor in visitors:
                if rng.random() > activity:
                    continue
                for server in rng.sample(["app.example.com", "eu.example.com"], rng.randint(1, 2)):
                    sim.add_events(
                        ident, visitor, day, rng.randint(1, 80), rng.randint(1, 45), server=server
                    )
                for feature_id, _name in FEATURES:
                    if rng.random() < 0.3:
                        sim.add_events(
                            ident,
                            visitor,
                            day,
                            rng.randint(1, 10),
                            rng.randint(1, 5),
                            feature_id=feature_id,
                        )
    return out


# Guides with polls, as Pendo's guide catalog lists them: an NPS guide is a rating poll
# (attributes.type "NPSRating") and a free-text reason poll; other guides hold other polls.
NPS_GUIDE_ID = "guide-nps-quarterly"
NPS_GUIDE_NAME = "Quarterly NPS"
NPS_RATING_POLL = "poll-nps-rating"
NPS_REASON_POLL = "poll-nps-reason"
FEEDBACK_GUIDE_ID = "guide-export-feedback"
FEEDBACK_POLL = "poll-export-thumbs"
GUIDES = (
    (
        NPS_GUIDE_ID,
        NPS_GUIDE_NAME,
        (
            (NPS_RATING_POLL, "NPSRating", "How likely are you to recommend us to a friend?"),
            (NPS_REASON_POLL, "FreeForm", "What is the main reason for your score?"),
        ),
    ),
    (
        FEEDBACK_GUIDE_ID,
        "Export feedback",
        ((FEEDBACK_POLL, "PositiveNegative", "Was this export useful?"),),
    ),
)
