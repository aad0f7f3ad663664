"""The sales voice: opportunities that cite an issue, and the pipeline at stake on it.

An opportunity cites issues through a field holding issue keys (`issue_keys` of the mapped
opportunity) and/or through junction records (`opportunity_issue`: opportunity id + issue key
or id), both mapped as data. An opportunity counts once per issue however it cites it. Open
opportunities (not closed) are the pipeline: their amount in the reporting currency, their
distinct accounts and stages; closed-lost ones are kept with their reasons.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pmsync.sync.links.rollups import Currencies
from pmsync.sync.links.world import Entity, World

PROVENANCE_LIMIT = 25  # opportunities listed per issue (the issue property has 32 KB)
_SALESFORCE_ID = re.compile(r"[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?")


@dataclass(frozen=True)
class IssuePipeline:
    """The opportunities citing one issue."""

    amount: float  # open opportunities, in the reporting currency
    opportunities: int
    accounts: int
    stages: tuple[str, ...]
    lost: int
    lost_reasons: tuple[tuple[str, int], ...]
    provenance: list[dict[str, Any]] = field(default_factory=list)
    unconverted: tuple[str, ...] = ()

    def figures(self) -> dict[str, Any]:
        """The issue figures of the sales voice, plus the opportunities behind them."""
        return {
            "pipeline": self.amount,
            "pipeline_opportunities": self.opportunities,
            "pipeline_accounts": self.accounts,
            "pipeline_stages": ", ".join(self.stages),
            "lost_opportunities": self.lost,
            "lost_reasons": ", ".join(f"{reason} ({n})" for reason, n in self.lost_reasons),
            "opportunities": self.provenance[:PROVENANCE_LIMIT],
            "opportunities_total": len(self.provenance),
            "pipeline_unconverted_currency": list(self.unconverted),
        }


def cited_issues(world: World) -> dict[str, set[str]]:
    """issue ref -> refs of the opportunities citing it (key field and junction records)."""
    cited: dict[str, set[str]] = defaultdict(set)
    for opportunity in world.opportunities.values():
        for key in opportunity.get("issue_keys", []):
            named = world.by_issue_key.get(str(key).strip().upper())
            if named is not None:
                cited[named.ref].add(opportunity.ref)
    by_id = _opportunities_by_id(world)
    for junction in world.opportunity_issues.values():
        cites = _lookup(by_id, junction.get("opportunity_id"))
        issue = world.by_issue_id.get(str(junction.get("issue_id"))) or world.by_issue_key.get(
            str(junction.get("issue_key", "")).strip().upper()
        )
        if cites is not None and issue is not None:
            cited[issue.ref].add(cites.ref)
    return cited


def compute_pipeline(
    world: World, currencies: Currencies, stages: Sequence[str] = ()
) -> dict[str, IssuePipeline]:
    """An IssuePipeline for every issue some opportunity cites."""
    result = {}
    for issue_ref, refs in cited_issues(world).items():
        opportunities = sorted((world.opportunities[r] for r in refs), key=lambda o: o.ref)
        result[issue_ref] = _pipeline(world, opportunities, currencies, stages)
    return result


def is_open(opportunity: Entity) -> bool:
    return not opportunity.get("is_closed", False)


def is_lost(opportunity: Entity) -> bool:
    return bool(opportunity.get("is_closed", False)) and not opportunity.get("is_won", False)


def _pipeline(
    world: World, opportunities: list[Entity], currencies: Currencies, stages: Sequence[str]
) -> IssuePipeline:
    open_ones = [
        o for o in opportunities if is_open(o) and (not stages or o.get("stage") in stages)
    ]
    converted: dict[str, float] = {}
    unconverted: list[str] = []
    for opportunity in open_ones:
        amount = currencies.convert(
            float(opportunity.get("amount", 0) or 0), opportunity.get("currency")
        )
        if amount is None:
            unconverted.append(opportunity.ref)
        else:
            converted[opportunity.ref] = amount
    accounts = {a.ref for o in open_ones if (a := world.account(o.get("account_id")))}
    lost = [o for o in opportunities if is_lost(o)]
    reasons = Counter(str(o.get("loss_reason") or "no reason given") for o in lost)
    ranked = sorted(open_ones, key=lambda o: (-converted.get(o.ref, 0.0), o.ref))
    return IssuePipeline(
        amount=round(sum(converted.values()), 2),
        opportunities=len(open_ones),
        accounts=len(accounts),
        stages=tuple(sorted({str(o.get("stage")) for o in open_ones if o.get("stage")})),
        lost=len(lost),
        lost_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        provenance=[_described(world, o, converted.get(o.ref)) for o in ranked],
        unconverted=tuple(unconverted),
    )


def _described(world: World, opportunity: Entity, converted: float | None) -> dict[str, Any]:
    account = world.account(opportunity.get("account_id"))
    return {
        "ref": opportunity.ref,
        "name": opportunity.get("name"),
        "account": account.get("name", account.key) if account else None,
        "amount": opportunity.get("amount"),
        "currency": opportunity.get("currency"),
        "amount_reporting": round(converted, 2) if converted is not None else None,
        "stage": opportunity.get("stage"),
    }


def _opportunities_by_id(world: World) -> dict[str, Entity]:
    found: dict[str, Entity] = {}
    for opportunity in world.opportunities.values():
        ident = str(opportunity.get("id") or opportunity.key)
        found[ident] = opportunity
        found.setdefault(opportunity.key, opportunity)
        if _SALESFORCE_ID.fullmatch(ident):  # an 18-char id is also known by its 15
            found.setdefault(ident[:15], opportunity)
    return found


def _lookup(by_id: dict[str, Entity], ident: Any) -> Entity | None:
    if not ident:
        return None
    text = str(ident)
    found = by_id.get(text)
    if found is None and _SALESFORCE_ID.fullmatch(text):
        found = by_id.get(text[:15])
    return found


def opportunities_of_accounts(world: World) -> dict[str, list[Entity]]:
    """account ref -> its opportunities (for account views)."""
    found: dict[str, list[Entity]] = defaultdict(list)
    for opportunity in world.opportunities.values():
        account = world.account(opportunity.get("account_id"))
        if account is not None:
            found[account.ref].append(opportunity)
    return found
