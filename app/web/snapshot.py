"""What the web view shows, computed once per change of the store and then only read.

Linking and rolling up a large company takes seconds, a page must take milliseconds: so a
`Snapshot` is built from the same derivation `pmsync report` runs (`Runtime.derive`, not
persisted: the web view writes nothing to the store), indexed for the pages (weekly trends, each
account's requests, usage, the write-back ledger), and kept until the store changes.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from pmsync.sync.links.derive import Derived
from pmsync.sync.links.models import WritebackSpec
from pmsync.sync.links.report import Section, review_queue
from pmsync.sync.links.rollups import Rollup
from pmsync.sync.links.world import Entity
from pmsync.sync.store.rows import StreamCounts
from pmsync.sync.store.schema import writeback_intents, writeback_ledger

if TYPE_CHECKING:
    from pmsync.app.runtime import Runtime

TREND_WEEKS = 12  # the sparkline on each issue row
UNCLASSIFIED = "unclassified"


def week_start(moment: date) -> date:
    """The Monday of the ISO week holding `moment`."""
    return moment - timedelta(days=moment.weekday())


def parse_day(value: Any) -> date | None:
    """The date of an ISO 8601 timestamp or date; None for anything else."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class IssueRow:
    """One issue asked for by customers: a row of the home page."""

    ref: str
    key: str
    summary: str
    status: str
    status_category: str
    project: str
    fix_versions: tuple[str, ...]
    release_date: str
    released: bool
    roll: Rollup
    areas: frozenset[str]
    weeks: Counter[date]  # new requests (counted tickets) per week start

    @property
    def arr(self) -> float:
        return self.roll.arr


@dataclass(frozen=True)
class Written:
    """One field pmsync wrote (the ledger), or one write in flight (an intent)."""

    connector: str
    object_name: str
    target_key: str
    field: str
    value: Any
    at: datetime | None
    state: str
    error: str = ""


@dataclass
class Snapshot:
    """The derived world plus the indexes the pages read; immutable once built."""

    derived: Derived
    rollup: str
    writebacks: dict[str, WritebackSpec]
    built_at: datetime
    seconds: float
    fingerprint: tuple[Any, ...]
    overrides_path: str | None
    today: date
    issues: dict[str, IssueRow] = field(default_factory=dict)
    issue_by_key: dict[str, str] = field(default_factory=dict)
    ticket_week: dict[str, date] = field(default_factory=dict)
    tickets_of_account: dict[str, list[Entity]] = field(default_factory=dict)
    usage_of_account: dict[str, list[Entity]] = field(default_factory=dict)
    written: dict[tuple[str, str], list[Written]] = field(default_factory=dict)
    review: Section | None = None
    areas: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    counts: dict[tuple[str, str], StreamCounts] = field(default_factory=dict)
    # Per ticket with a creation date: (week start, product area, segment), for the charts.
    ticket_facts: list[tuple[date, str, str]] = field(default_factory=list)
    # Per product area: tickets, distinct accounts, their ARR, tickets per segment.
    area_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def world(self) -> Any:
        return self.derived.world

    @property
    def currency(self) -> str:
        return self.derived.currencies.reporting

    def issue(self, key_or_ref: str) -> IssueRow | Entity | None:
        """An issue by Jira key or ref: its row when customers ask for it, else the entity."""
        ref = self.issue_by_key.get(key_or_ref.upper(), key_or_ref)
        return self.issues.get(ref) or self.world.issues.get(ref)

    def account_arr(self, account: Entity) -> float | None:
        amount = float(account.get("arr", 0) or 0)
        return self.derived.currencies.convert(amount, account.get("currency"))

    def area_of(self, ticket: Entity) -> str:
        return str(ticket.get("product_area") or UNCLASSIFIED)

    def segment_of_ticket(self, ticket: Entity) -> str:
        link = self.derived.links.account_of.get(ticket.ref)
        account = self.world.accounts.get(link.target) if link else None
        return str(account.get("segment") or "none") if account else "no account"


def build_snapshot(runtime: Runtime, fingerprint: tuple[Any, ...] = ()) -> Snapshot:
    """Derive (without storing anything) and index everything the pages need."""
    started = time.perf_counter()
    derived = runtime.derive(persist=False)
    rollup = next(iter(derived.rollups))
    today = datetime.now(UTC).date()
    overrides = runtime.mappings.overrides_path
    snapshot = Snapshot(
        derived=derived,
        rollup=rollup,
        writebacks={name: spec for name, (_file, spec) in runtime.mappings.writebacks.items()},
        built_at=datetime.now(UTC),
        seconds=0.0,
        fingerprint=fingerprint,
        overrides_path=str(overrides) if overrides else None,
        today=today,
    )
    _index_tickets(snapshot)
    _index_areas(snapshot)
    _index_issues(snapshot)
    _index_usage(snapshot)
    snapshot.written = _load_written(runtime)
    snapshot.review = review_queue(derived)
    snapshot.counts = runtime.store.stream_counts()
    snapshot.seconds = time.perf_counter() - started
    return snapshot


def _index_tickets(snapshot: Snapshot) -> None:
    world = snapshot.world
    tickets_of: dict[str, list[Entity]] = defaultdict(list)
    areas: set[str] = set()
    for ticket in world.tickets.values():
        day = parse_day(ticket.get("created_at"))
        if day is not None:
            snapshot.ticket_week[ticket.ref] = week_start(day)
        areas.add(snapshot.area_of(ticket))
        link = snapshot.derived.links.account_of.get(ticket.ref)
        if link is not None:
            tickets_of[link.target].append(ticket)
    for tickets in tickets_of.values():
        tickets.sort(key=lambda t: str(t.get("created_at", "")), reverse=True)
    snapshot.tickets_of_account = dict(tickets_of)
    snapshot.areas = sorted(areas)
    snapshot.segments = sorted(
        {str(a.get("segment")) for a in world.accounts.values() if a.get("segment")}
    )


def _index_areas(snapshot: Snapshot) -> None:
    """What the product areas page reads, computed once: it does not depend on the request."""
    tickets: Counter[str] = Counter()
    per_segment: Counter[tuple[str, str]] = Counter()
    accounts: dict[str, set[str]] = defaultdict(set)
    for ticket in snapshot.world.tickets.values():
        area = snapshot.area_of(ticket)
        segment = snapshot.segment_of_ticket(ticket)
        tickets[area] += 1
        per_segment[(area, segment)] += 1
        week = snapshot.ticket_week.get(ticket.ref)
        if week is not None:
            snapshot.ticket_facts.append((week, area, segment))
        link = snapshot.derived.links.account_of.get(ticket.ref)
        if link is not None:
            accounts[area].add(link.target)
    for area in sorted(tickets):
        asking = accounts.get(area, set())
        arr = sum(snapshot.account_arr(snapshot.world.accounts[a]) or 0.0 for a in asking)
        row: dict[str, Any] = {
            "product_area": area,
            "tickets": tickets[area],
            "accounts": len(asking),
            "arr": round(arr, 2),
        }
        for segment in snapshot.segments:
            row[f"tickets_{segment}"] = per_segment.get((area, segment), 0)
        snapshot.area_rows.append(row)


def _index_issues(snapshot: Snapshot) -> None:
    world = snapshot.world
    statuses: set[str] = set()
    projects: set[str] = set()
    for ref, issue in world.issues.items():
        snapshot.issue_by_key[str(issue.get("key", issue.key)).upper()] = ref
        if issue.get("status"):
            statuses.add(str(issue.get("status")))
        if issue.get("project"):
            projects.add(str(issue.get("project")))
    for ref, roll in snapshot.derived.rollups[snapshot.rollup].items():
        if roll.empty:
            continue
        issue = world.issues[ref]
        tickets = [world.tickets[t] for t in roll.provenance["tickets"] if t in world.tickets]
        weeks: Counter[date] = Counter(
            snapshot.ticket_week[t.ref] for t in tickets if t.ref in snapshot.ticket_week
        )
        snapshot.issues[ref] = IssueRow(
            ref=ref,
            key=roll.issue_key,
            summary=str(issue.get("summary", "")),
            status=str(issue.get("status", "")),
            status_category=str(issue.get("status_category", "")),
            project=str(issue.get("project", "")),
            fix_versions=tuple(str(v) for v in issue.get("fix_versions", [])),
            release_date=str(issue.get("release_date", "") or ""),
            released=bool(issue.get("fix_versions_released", False)),
            roll=roll,
            areas=frozenset(snapshot.area_of(t) for t in tickets),
            weeks=weeks,
        )
    snapshot.statuses = sorted(statuses)
    snapshot.projects = sorted(projects)


def _index_usage(snapshot: Snapshot) -> None:
    """Usage records by the CRM account key they belong to, oldest day first."""
    world = snapshot.world
    found: dict[str, list[Entity]] = defaultdict(list)
    for record in world.usage.values():
        account = _usage_account(snapshot, record)
        if account is not None:
            found[account].append(record)
    for records in found.values():
        records.sort(key=lambda r: str(r.get("day", "")))
    snapshot.usage_of_account = dict(found)


def _usage_account(snapshot: Snapshot, record: Entity) -> str | None:
    """The account ref a usage record belongs to: directly, or through the analytics tool's
    own account synced as an organization (as the rollups join it)."""
    world = snapshot.world
    account_id = record.get("account_id")
    if not account_id:
        return None
    direct = world.account(account_id)
    if direct is not None:
        return str(direct.ref)
    organization = world.organizations.get(f"{record.connector}:{account_id}")
    if organization is not None:
        linked = world.account(organization.get("account_id"))
        return str(linked.ref) if linked is not None else None
    return None


def _load_written(runtime: Runtime) -> dict[tuple[str, str], list[Written]]:
    """The ledger (what pmsync wrote) and unfinished intents, by (connector, target key)."""
    found: dict[tuple[str, str], list[Written]] = defaultdict(list)
    with runtime.store.engine.connect() as connection:
        for row in connection.execute(sa.select(writeback_ledger)):
            found[(row.connector, row.target_key)].append(
                Written(
                    row.connector,
                    row.object_name,
                    row.target_key,
                    row.field,
                    _loads(row.value),
                    row.written_at,
                    "written",
                )
            )
        intents = sa.select(writeback_intents).where(
            writeback_intents.c.state.in_(("pending", "failed"))
        )
        for row in connection.execute(intents):
            found[(row.connector, row.target_key)].append(
                Written(
                    row.connector,
                    row.object_name,
                    row.target_key,
                    row.field,
                    _loads(row.value),
                    row.created_at,
                    row.state,
                    row.error or "",
                )
            )
    return dict(found)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
