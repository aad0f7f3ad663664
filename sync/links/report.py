"""What leaders read: top issues by revenue at stake, product areas by demand, unlinked feedback,
and the review queue of links product ops must decide."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from pmsync.sync.links.derive import Derived
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.world import Entity
from pmsync.sync.store.schema import rollups as rollups_table
from pmsync.sync.store.store import Store


@dataclass(frozen=True)
class Section:
    """A table: a title, column names and rows (plain values, ready for table, CSV or JSON).

    `currency` is the one currency every amount of the section is in (the reporting currency).
    """

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    currency: str | None = None

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def voice_columns(derived: Derived, rollup: str) -> tuple[str, ...]:
    """The other voices' figures and the scores of `rollup`, where there are any."""
    columns: tuple[str, ...] = ()
    if derived.voices.has_pipeline:
        columns += ("pipeline", "pipeline_opportunities")
    if derived.voices.has_surveys:
        columns += ("detractor_arr", "detractor_accounts")
    rolled = derived.rollups.get(rollup, {})
    sample = next(iter(rolled.values())).value() if rolled else {}
    return columns + tuple(name for name in derived.voices.scores if name in sample)


def top_issues(derived: Derived, rollup: str, limit: int) -> Section:
    extra = voice_columns(derived, rollup)
    rows = []
    for issue_ref, roll in derived.rollups[rollup].items():
        if roll.empty:
            continue
        issue = derived.world.issues[issue_ref]
        figures = roll.value()
        rows.append(
            (
                roll.issue_key,
                issue.get("summary", ""),
                issue.get("status", ""),
                roll.arr,
                roll.currency,
                roll.accounts,
                roll.tickets,
                ", ".join(roll.top_accounts),
                roll.last_request or "",
                *(figures.get(name) for name in extra),
            )
        )
    rows.sort(key=lambda r: (-r[3], -r[6], natural(r[0])))
    return Section(
        "issues",
        "Top issues by customer revenue asking for them",
        (
            "issue",
            "summary",
            "status",
            "arr",
            "currency",
            "accounts",
            "tickets",
            "top_accounts",
            "last_request",
            *extra,
        ),
        rows[:limit],
        derived.currencies.reporting,
    )


def ranked_by_score(derived: Derived, rollup: str, score: str, limit: int) -> Section:
    """Issues by one declared score, highest first, with the figures beside it."""
    extra = tuple(c for c in voice_columns(derived, rollup) if c != score)
    rows = []
    for issue_ref, result in derived.voices.scores.get(score, {}).items():
        if result.value is None:
            continue
        roll = derived.rollups[rollup][issue_ref]
        issue = derived.world.issues[issue_ref]
        figures = roll.value()
        rows.append(
            (
                roll.issue_key,
                issue.get("summary", ""),
                issue.get("status", ""),
                result.value,
                roll.arr,
                roll.accounts,
                *(figures.get(name) for name in extra),
            )
        )
    rows.sort(key=lambda r: (-r[3], natural(r[0])))
    return Section(
        "scores",
        f"Issues by {score} score",
        ("issue", "summary", "status", score, "arr", "accounts", *extra),
        rows[:limit],
        derived.currencies.reporting,
    )


def product_areas(derived: Derived) -> Section:
    tickets: dict[str, int] = defaultdict(int)
    accounts: dict[str, set[str]] = defaultdict(set)
    for ticket in derived.world.tickets.values():
        area = str(ticket.get("product_area") or "unclassified")
        tickets[area] += 1
        link = derived.links.account_of.get(ticket.ref)
        if link:
            accounts[area].add(link.target)
    rows = []
    for area, count in tickets.items():
        arr = sum(_arr(derived, derived.world.accounts[a]) for a in accounts[area])
        rows.append((area, count, len(accounts[area]), round(arr, 2), derived.currencies.reporting))
    rows.sort(key=lambda r: (-r[3], -r[1], r[0]))
    return Section(
        "areas",
        "Product areas by demand",
        ("product_area", "tickets", "accounts", "arr", "currency"),
        rows,
        derived.currencies.reporting,
    )


def unlinked_feedback(derived: Derived, limit: int) -> Section:
    """Tickets linked to no issue, weighted by the revenue of their account."""
    rows = []
    for ticket in derived.world.tickets.values():
        if ticket.ref in derived.links.issues_of:
            continue
        link = derived.links.account_of.get(ticket.ref)
        account = derived.world.accounts.get(link.target) if link else None
        arr = _arr(derived, account) if account else 0.0
        rows.append(
            (
                ticket.key,
                ticket.get("subject", ""),
                ticket.get("product_area", ""),
                account.get("name", "") if account else "",
                round(arr, 2),
                ticket.get("created_at", ""),
            )
        )
    rows.sort(key=lambda r: (-r[4], natural(r[0])))
    return Section(
        "unlinked",
        f"Feedback linked to no issue ({len(rows):,} tickets)",
        ("ticket", "subject", "product_area", "account", "arr", "created_at"),
        rows[:limit],
        derived.currencies.reporting,
    )


def review_queue(derived: Derived) -> Section:
    """Ambiguous and missing matches, by revenue at stake, for product ops to resolve."""
    rows = []
    world = derived.world
    for item in derived.links.unresolved:
        candidates = [world.accounts[c] for c in item.candidates if c in world.accounts]
        if item.kind == "ticket_account":
            at_stake = max((_arr(derived, a) for a in candidates), default=0.0)
        else:
            link = derived.links.account_of.get(item.ticket)
            account = world.accounts.get(link.target) if link else None
            at_stake = _arr(derived, account) if account else 0.0
        ticket = world.tickets.get(item.ticket)
        rows.append(
            (
                item.ticket,
                ticket.get("subject", "") if ticket else "",
                item.kind,
                item.rule,
                item.reason,
                item.detail,
                ", ".join(f"{c.get('name', c.key)} ({c.key})" for c in candidates),
                round(at_stake, 2),
            )
        )
    rows.sort(key=lambda r: (-r[7], r[2], natural(r[0]), r[3]))
    return Section(
        "review",
        "Links to review (resolve them in the overrides file)",
        ("ticket", "subject", "kind", "rule", "reason", "detail", "candidates", "arr_at_stake"),
        rows,
        derived.currencies.reporting,
    )


def empty_scores(derived: Derived) -> Section:
    """Declared scores left empty on issues in their scope, and the inputs they miss."""
    rows = []
    for name, per_issue in derived.voices.scores.items():
        for issue_ref, result in per_issue.items():
            if result.in_scope and result.value is None:
                issue = derived.world.issues[issue_ref]
                rows.append((str(issue.get("key", issue.key)), name, "; ".join(result.missing)))
    return _empty_scores_section(rows)


def stored_empty_scores(
    store: Store, scores: Mapping[str, ScoreSpec], rollups: Collection[str]
) -> Section:
    """`empty_scores` of the last persisted derivation, read from the stored rollups: what
    `pmsync plan` lists without holding the World (a streamed derivation holds no score).

    A derivation stores every issue's rollup with its scores' provenance (`voices.py`): an
    issue in a score's scope has the score under `scores`, its value null when an input is
    missing, and the inputs it misses. `rollups`: the declared rollups (a score of another
    rollup is computed by none); rows are read a batch at a time."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for name, spec in scores.items():
        if spec.rollup in rollups:
            wanted[spec.rollup].append(name)
    if not wanted:
        return _empty_scores_section([])
    query = sa.select(rollups_table.c.name, rollups_table.c.issue_key, rollups_table.c.value).where(
        rollups_table.c.name.in_(sorted(wanted))
    )
    rows = []
    with store.engine.connect() as connection:
        for rollup, issue_key, value in connection.execution_options(yield_per=1000).execute(query):
            if '"scores"' not in value:  # no score has this issue in its scope
                continue
            provenance = orjson.loads(value).get("scores", {})
            for name in wanted[rollup]:
                score = provenance.get(name)
                if score is not None and score.get("value") is None:
                    rows.append((issue_key, name, "; ".join(score.get("missing", []))))
    return _empty_scores_section(rows)


def _empty_scores_section(rows: list[tuple[Any, ...]]) -> Section:
    rows.sort(key=lambda r: (r[1], r[0]))
    return Section(
        "empty_scores",
        "Scores left empty: an input is missing and has no default",
        ("issue", "score", "missing"),
        rows,
    )


def natural(value: Any) -> tuple[Any, ...]:
    """Sort key that orders the numbers inside keys as numbers: ticket 9 before 10, APP-9 before
    APP-10."""
    parts = re.split(r"(\d+)", str(value))
    return tuple(int(part) if n % 2 else part for n, part in enumerate(parts))


def _arr(derived: Derived, account: Entity | None) -> float:
    if account is None:
        return 0.0
    value = derived.currencies.convert(float(account.get("arr", 0) or 0), account.get("currency"))
    return value or 0.0
