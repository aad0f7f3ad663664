"""Generate a plausible PostHog project: persons of customer accounts using a product daily.

Deterministic for a seed. Events carry the account as the property `account_id` (the
Salesforce-style ids the other generators use), as a product sends it with each event.
Activity covers `days` days up to and including today (today's rows are partial).
"""

from __future__ import annotations

import random
from datetime import timedelta

from pmsync.simulators.posthog.app import PostHogSimulator, day_start

EVENTS = ("$pageview", "dashboard_viewed", "export_csv", "report_created")


def account_id(n: int) -> str:
    return f"001SIM{n:012d}"


def generate(
    sim: PostHogSimulator,
    *,
    accounts: int = 10,
    days: int = 30,
    persons_per_account: tuple[int, int] = (1, 4),
    activity: float = 0.5,
    seed: int = 3,
) -> list[str]:
    """Fill `sim`; returns the account ids."""
    rng = random.Random(seed)
    today = sim.today()
    ids = [account_id(n) for n in range(1, accounts + 1)]
    rows = []
    for account in ids:
        persons = [f"{account}-p{p}" for p in range(rng.randint(*persons_per_account))]
        for offset in range(days):
            start = day_start(today - timedelta(days=offset))
            for person in persons:
                if rng.random() > activity:
                    continue
                for _ in range(rng.randint(1, 6)):
                    at = start + timedelta(seconds=rng.randint(0, 86_399))
                    rows.append(
                        (rng.choice(EVENTS), person, at, {"account_id": account, "plan": "pro"})
                    )
    sim.capture_many(rows)
    return ids
