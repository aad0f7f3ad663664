"""The survey voice: each account's latest NPS (and CSAT), and the detractors asking for an issue.

A survey response belongs to an account through its account_id (the CRM account itself, or the
survey tool's own account synced as an organization of the same connector, as Pendo's is), or
else through the respondent's e-mail when it is a contact of exactly one account. The latest
answer of any person at the account is the account's score, per kind of survey.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pmsync.sync.links.world import Entity, World, ref

NPS = "nps"
PROVENANCE_LIMIT = 25


@dataclass(frozen=True)
class LatestScore:
    """An account's most recent answer to one kind of survey."""

    kind: str
    score: float
    responded_at: str
    response: str  # the response record's ref
    comment: str | None


AccountScores = dict[str, dict[str, LatestScore]]  # kind -> account ref -> latest


def latest_scores(
    world: World, *, days: int | None = None, today: date | None = None
) -> AccountScores:
    """Per kind of survey, each account's latest scored answer (within `days` when given)."""
    since = None
    if days is not None:
        since = ((today or datetime.now(UTC).date()) - timedelta(days=days)).isoformat()
    latest: AccountScores = defaultdict(dict)
    for response in sorted(world.surveys.values(), key=lambda r: r.ref):
        score = _number(response.get("score"))
        when = str(response.get("responded_at") or response.get("created_at") or "")
        if score is None or (since is not None and when[:10] < since):
            continue
        account = survey_account(world, response)
        if account is None:
            continue
        kind = str(response.get("kind") or NPS).strip().lower()
        current = latest[kind].get(account.ref)
        if current is None or (when, response.ref) > (current.responded_at, current.response):
            comment = response.get("comment")
            latest[kind][account.ref] = LatestScore(
                kind, score, when, response.ref, str(comment) if comment else None
            )
    return dict(latest)


def survey_account(world: World, response: Entity) -> Entity | None:
    """The CRM account a response belongs to, or None when nothing identifies one."""
    account_id = response.get("account_id")
    if account_id:
        direct = world.account(account_id)
        if direct is not None:
            return direct
        organization = world.organizations.get(ref(response.connector, str(account_id)))
        if organization is not None:
            linked = world.account(organization.get("account_id"))
            if linked is not None:
                return linked
    email = str(response.get("email") or "").lower()
    if email:
        accounts = {
            a.ref: a
            for c in world.contacts_by_email.get(email, [])
            if (a := world.account(c.get("account_id"))) is not None
        }
        if len(accounts) == 1:
            return next(iter(accounts.values()))
    return None


def detractor_figures(
    asking: list[dict[str, Any]], nps: dict[str, LatestScore], detractor_max: float
) -> dict[str, Any]:
    """Figures of the asking accounts' NPS: `asking` is a rollup's provenance accounts
    (ref, name, arr_reporting)."""
    answered = [(a, nps[a["ref"]]) for a in asking if a["ref"] in nps]
    detractors = [(a, s) for a, s in answered if s.score <= detractor_max]
    arr = sum(float(a.get("arr_reporting") or 0) for a, _s in detractors)
    average = sum(s.score for _a, s in answered) / len(answered) if answered else None
    return {
        "detractor_arr": round(arr, 2),
        "detractor_accounts": len(detractors),
        "nps_average": round(average, 2) if average is not None else None,
        "detractors": [
            {
                "ref": a["ref"],
                "name": a.get("name"),
                "nps": s.score,
                "responded_at": s.responded_at,
                "arr_reporting": a.get("arr_reporting"),
            }
            for a, s in detractors[:PROVENANCE_LIMIT]
        ],
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None
