"""The other voices of the generated company: sales opportunities citing Jira issues, and NPS
answers in Pendo; and their ground truth, computed without pmsync.

Messy like the rest of the company: issue keys typed by hand into a text field ("core-12; DATA-3",
"see CORE-40"), keys of issues that never existed or moved, opportunities citing one issue both
in the field and through the junction object, amounts left empty, deals in another currency
than their account, lost deals without a reason, deals of deleted accounts (deleted with them);
NPS answers from anonymous visitors, from accounts the CRM deleted, ratings sent as text, a
reason poll beside each rating, and another guide's poll whose answers are no NPS.

Generated from their own random stream, so the rest of the company is the same with or
without them.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pmsync.simulators.salesforce.data import LOSS_REASONS, OPPORTUNITY_STAGES
from pmsync.simulators.salesforce.model import salesforce_id

if TYPE_CHECKING:
    from pmsync.simulators.company import Account, Company, Issue, IssueDemand

DAY = 86_400
NPS_DAYS = 28  # answers of the last four weeks: inside the demo's Pendo window (30 days)
DETRACTOR_MAX = 6
OPEN_STAGES = tuple(s for s, (_p, closed, _w) in OPPORTUNITY_STAGES.items() if not closed)
_DEAL_KINDS = ("Expansion", "Renewal", "New seats", "Upgrade")
_REASONS = (
    "Exports are too slow",
    "Missing SSO",
    "Great support",
    "Reports are hard to share",
    "Works well for us",
    None,
)
# Story points stand for effort where an issue has none (the demo's RICE declares it).
DEFAULT_EFFORT = 5.0
SEGMENT_WEIGHTS = {"Enterprise": 3.0, "Mid-Market": 2.0, "SMB": 1.0}
LINK_CONFIDENCE = {
    "organization_external_id": 1.0,
    "organization_account_field": 1.0,
    "contact_email": 0.8,
    "email_domain": 0.5,
}


@dataclass
class Opportunity:
    id: str
    account_id: str
    name: str
    amount: float | None
    currency: str
    stage: str
    close_in_days: int
    type: str
    owner_id: str
    field_text: str | None = None  # Jira_Issues__c, as sales typed it
    junction_keys: list[str] = field(default_factory=list)  # Opportunity_Issue__c records
    loss_reason: str | None = None
    deleted: bool = False

    @property
    def closed(self) -> bool:
        return OPPORTUNITY_STAGES[self.stage][1]


@dataclass
class NpsAnswer:
    account_id: str  # Pendo's accountId (the Salesforce Account Id)
    visitor_id: str
    days_ago: int
    second_of_day: int
    rating: int | str  # Pendo's pollResponse: a number, sometimes text
    reason: str | None
    poll: str = "rating"  # rating | feedback (another guide's poll)


# ---- generation ---------------------------------------------------------------------------------


def generate_voices(company: Company, seed: int) -> None:
    """Opportunities and NPS answers for the company (its own random stream)."""
    rng = random.Random(f"{seed}:voices")
    _opportunities(company, rng)
    _nps(company, rng)


def _opportunities(company: Company, rng: random.Random) -> None:
    facing = [i for i in company.issues if not i.deleted and "customer-request" in i.labels]
    live = [i for i in company.issues if not i.deleted]
    ghosts = [i.old_key for i in company.issues if i.old_key]
    number = 0
    for account in company.accounts:
        if rng.random() >= 0.55:
            continue
        for _ in range(rng.choice((1, 1, 2, 3))):
            number += 1
            opportunity = _opportunity(rng, account, number)
            if rng.random() < 0.45:
                pool = facing if facing and rng.random() < 0.6 else live
                _cite(rng, opportunity, rng.sample(pool, k=min(len(pool), rng.choice((1, 1, 2)))))
            if rng.random() < 0.04:  # a key that never existed, or from before a move
                ghost = rng.choice([*ghosts, "CORE-9999"])
                opportunity.field_text = ", ".join(filter(None, [opportunity.field_text, ghost]))
            opportunity.deleted = account.deleted  # deleting an account deletes its deals
            company.opportunities.append(opportunity)


def _opportunity(rng: random.Random, account: Account, number: int) -> Opportunity:
    stage = rng.choices(list(OPPORTUNITY_STAGES), weights=(3, 3, 2, 2, 2, 4, 3))[0]
    amount = float(round(account.arr * rng.uniform(0.05, 0.6) / 100) * 100)
    currency = account.currency
    if rng.random() < 0.06:  # quoted in another currency than the account's
        currency = rng.choice([c for c in ("USD", "EUR", "GBP") if c != account.currency])
    closed = OPPORTUNITY_STAGES[stage][1]
    return Opportunity(
        id=salesforce_id("006", number),
        account_id=account.id,
        name=f"{account.name} - {rng.choice(_DEAL_KINDS)}",
        amount=None if rng.random() < 0.04 else amount,
        currency=currency,
        stage=stage,
        close_in_days=rng.randint(-200, -1) if closed else rng.randint(5, 180),
        type=rng.choice(("New Business", "Existing Business")),
        owner_id=account.owner_id,
        loss_reason=(rng.choice((*LOSS_REASONS, None)) if stage == "Closed Lost" else None),
    )


def _cite(rng: random.Random, opportunity: Opportunity, issues: list[Issue]) -> None:
    """Cite issues in the text field, through the junction object, or both."""
    typed: list[str] = []
    for issue in issues:
        key = issue.key
        how = rng.random()
        if how < 0.6 or how >= 0.85:
            typed.append(key.lower() if rng.random() < 0.15 else key)
        if how >= 0.6:
            opportunity.junction_keys.append(key)
    if typed:
        separator = rng.choice((", ", "; ", " ", ","))
        text = separator.join(typed)
        opportunity.field_text = f"see {text}" if rng.random() < 0.1 else text


def _nps(company: Company, rng: random.Random) -> None:
    in_pendo = sorted({u.account_id for u in company.usage})
    deleted = [a.id for a in company.accounts if a.deleted]
    for account_id in in_pendo:
        if rng.random() >= 0.6:
            continue
        mood = rng.random()
        days = rng.sample(range(1, NPS_DAYS + 1), k=rng.choice((1, 1, 2, 3)))
        for n, days_ago in enumerate(days):
            rating: int | str = _rating(rng, mood)
            if rng.random() < 0.03:
                rating = str(rating)  # sent as text
            company.nps.append(
                NpsAnswer(
                    account_id=account_id,
                    visitor_id=f"{account_id}-v{n}",
                    days_ago=days_ago,
                    second_of_day=rng.randrange(60, DAY - 120, 60) + n,
                    rating=rating,
                    reason=rng.choice(_REASONS),
                )
            )
        if rng.random() < 0.1:  # an anonymous visitor answers too: never counted
            company.nps.append(NpsAnswer(account_id, "_PENDO_T_anon42", 1, 600, 0, "meh"))
        if rng.random() < 0.15:  # another guide's poll: not an NPS answer
            company.nps.append(
                NpsAnswer(account_id, f"{account_id}-v0", 2, 900, "yes", None, poll="feedback")
            )
    for account_id in deleted[:2]:  # answers of accounts the CRM deleted since: no account
        company.nps.append(NpsAnswer(account_id, f"{account_id}-v0", 3, 1200, 2, "leaving"))


def _rating(rng: random.Random, mood: float) -> int:
    if mood < 0.3:
        return rng.randint(0, 6)
    if mood < 0.55:
        return rng.randint(7, 8)
    return rng.randint(9, 10)


# ---- ground truth ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuePipelineTruth:
    """Expected sales-voice figures of one issue."""

    amount: float
    opportunities: frozenset[str]
    accounts: frozenset[str]
    lost: int


def pipeline_truth(company: Company, rates: Mapping[str, float]) -> dict[str, IssuePipelineTruth]:
    """Per live issue id cited by a live opportunity: open amount in USD, opportunities, ..."""
    # A moved issue answers to its old key too, as Jira keeps old keys working.
    by_key = {key: i.id for i in company.issues if not i.deleted for key in _keys_of(i)}
    cites: dict[str, set[str]] = defaultdict(set)
    opportunities = {o.id: o for o in company.opportunities if not o.deleted}
    for opportunity in opportunities.values():
        for key in _keys(opportunity):
            if key in by_key:
                cites[by_key[key]].add(opportunity.id)
    result = {}
    for issue_id, ids in cites.items():
        open_ones = [opportunities[i] for i in ids if not opportunities[i].closed]
        lost = [i for i in ids if opportunities[i].stage == "Closed Lost"]
        total = sum((o.amount or 0.0) * rates[o.currency] for o in open_ones)
        result[issue_id] = IssuePipelineTruth(
            amount=round(total, 2),
            opportunities=frozenset(o.id for o in open_ones),
            accounts=frozenset(o.account_id for o in open_ones),
            lost=len(lost),
        )
    return result


def _keys_of(issue: Issue) -> list[str]:
    return [issue.key, issue.old_key] if issue.old_key else [issue.key]


def _keys(opportunity: Opportunity) -> set[str]:
    """Issue keys an opportunity names, read as a person would read the text."""
    typed = re.findall(r"[A-Za-z][A-Za-z0-9]+-\d+", opportunity.field_text or "")
    return {k.upper() for k in [*typed, *opportunity.junction_keys]}


def latest_nps(company: Company) -> dict[str, int]:
    """Each live account's latest numeric NPS rating from an identified visitor."""
    live = {a.id for a in company.accounts if not a.deleted}
    latest: dict[str, tuple[tuple[int, int], int]] = {}
    for answer in company.nps:
        if answer.poll != "rating" or answer.visitor_id.startswith("_PENDO_T_"):
            continue
        if answer.account_id not in live:
            continue
        when = (-answer.days_ago, answer.second_of_day)
        current = latest.get(answer.account_id)
        if current is None or when > current[0]:
            latest[answer.account_id] = (when, int(answer.rating))
    return {account: rating for account, (_when, rating) in latest.items()}


def detractor_truth(
    company: Company, demand: Mapping[str, IssueDemand], rates: Mapping[str, float]
) -> dict[str, tuple[float, int]]:
    """Per issue: (ARR in USD, count) of asking accounts whose latest NPS is 6 or less."""
    nps = latest_nps(company)
    accounts = company.truth.accounts
    result = {}
    for issue_id, wanted in demand.items():
        detractors = [a for a in wanted.accounts if a in nps and nps[a] <= DETRACTOR_MAX]
        arr = sum(accounts[a].arr * rates[accounts[a].currency] for a in detractors)
        result[issue_id] = (round(arr, 2), len(detractors))
    return result


def rice_truth(
    company: Company, demand: Mapping[str, IssueDemand], pipeline: Mapping[str, object]
) -> dict[str, float | None]:
    """The demo's RICE per issue in scope: reach = asking accounts, impact = their mean segment
    weight, confidence = their mean strongest link rule, effort = story points (default 5)."""
    points = {i.id: i.points for i in company.issues}
    rules: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ticket in company.truth.tickets.values():
        if ticket.deleted or ticket.account is None or ticket.rule is None:
            continue
        for issue_id in ticket.issue_ids:
            rules[(issue_id, ticket.account)].add(ticket.rule)
    result: dict[str, float | None] = {}
    for issue_id, wanted in demand.items():
        open_deals = getattr(pipeline.get(issue_id), "opportunities", ())
        if not wanted.tickets and not open_deals:
            continue  # out of scope: nobody asks
        if not wanted.accounts:
            result[issue_id] = None  # impact and confidence have no asking account
            continue
        segments = [SEGMENT_WEIGHTS[company.truth.accounts[a].segment] for a in wanted.accounts]
        trust = [max(LINK_CONFIDENCE[r] for r in rules[(issue_id, a)]) for a in wanted.accounts]
        impact = sum(segments) / len(segments)
        confidence = sum(trust) / len(trust)
        effort = points[issue_id] or DEFAULT_EFFORT
        result[issue_id] = round(len(wanted.accounts) * impact * confidence / effort, 2)
    return result
