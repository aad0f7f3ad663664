"""NPS answers from Pendo poll events, paired with the reason the visitor gave.

Pendo keeps an NPS guide as two polls: the rating (attributes.type "NPSRating", 0-10) and a
free-text reason. Poll answers come from the `pollEvents` source, one row per answer; which
poll is a rating comes from the `guides` catalog. A record is one rating answer, keyed on
visitor, poll and browser time (an answer never changes, so a re-read repeats its key), with
the guide's name and the reason the same visitor gave in the same guide that day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

NPS_RATING = "NPSRating"
Role = Literal["rating", "reason", "other"]


@dataclass(frozen=True)
class Poll:
    """One poll of the catalog and its part in an NPS guide."""

    poll_id: str
    guide_id: str
    guide_name: str
    poll_type: str
    role: Role


def catalog(guides: Iterable[Any]) -> dict[str, Poll]:
    """poll id -> Poll, for every poll of every guide in a `guides` aggregation answer."""
    polls: dict[str, Poll] = {}
    for guide in guides:
        if not isinstance(guide, dict):
            continue
        entries = [p for p in guide.get("polls") or [] if isinstance(p, dict) and p.get("id")]
        types = {str(p["id"]): str((p.get("attributes") or {}).get("type") or "") for p in entries}
        nps = NPS_RATING in types.values()
        for poll_id, poll_type in types.items():
            role: Role = "other"
            if nps:
                role = "rating" if poll_type == NPS_RATING else "reason"
            polls[poll_id] = Poll(
                poll_id, str(guide.get("id", "")), str(guide.get("name") or ""), poll_type, role
            )
    return polls


def rating(value: Any) -> float | None:
    """An NPS rating as a number (Pendo may send it as text), None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def nps_records(rows: Iterable[dict[str, Any]], polls: dict[str, Poll]) -> list[dict[str, Any]]:
    """A record per NPS rating answer, with the reason given beside it."""
    reasons: dict[tuple[str, str], list[dict[str, Any]]] = {}
    ratings: list[dict[str, Any]] = []
    for row in rows:
        poll = polls.get(str(row.get("pollId")))
        if poll is None or poll.role == "other":
            continue
        if poll.role == "reason":
            reasons.setdefault((str(row.get("visitorId")), poll.guide_id), []).append(row)
        else:
            ratings.append(row)
    records = []
    for row in ratings:
        poll = polls[str(row["pollId"])]
        visitor = str(row.get("visitorId"))
        reason = _nearest(reasons.get((visitor, poll.guide_id), []), row)
        records.append(
            {
                **row,
                "id": f"{visitor}:{poll.poll_id}:{row.get('browserTime')}",
                "pollType": poll.poll_type,
                "guideName": poll.guide_name,
                "score": rating(row.get("pollResponse")),
                "reason": reason.get("pollResponse") if reason else None,
            }
        )
    return records


def _nearest(candidates: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    """The reason answer closest in time to the rating, on the same day."""
    same_day = [c for c in candidates if c.get("day") == row.get("day")]
    stamp = row.get("browserTime") or 0
    return min(
        same_day,
        key=lambda c: (abs(int(c.get("browserTime") or 0) - int(stamp)), str(c.get("pollId"))),
        default=None,
    )


FIELDS = (
    ("id", "string", "visitorId:pollId:browserTime, the record key"),
    ("accountId", "string", "Pendo account id"),
    ("visitorId", "string", "Pendo visitor id"),
    ("guideId", "string", "the NPS guide"),
    ("guideName", "string", "the NPS guide's name"),
    ("pollId", "string", "the rating poll"),
    ("pollType", "string", "NPSRating"),
    ("pollResponse", "number", "the answer as Pendo sends it"),
    ("score", "number", "the rating, 0-10"),
    ("reason", "string", "the reason the visitor gave in the same guide that day"),
    ("browserTime", "integer", "when the visitor answered, epoch milliseconds"),
    ("day", "integer", "the day's start, epoch milliseconds"),
)
