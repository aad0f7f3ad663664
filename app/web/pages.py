"""The list pages: issues by revenue at stake (home), product areas, review queue, freshness.

Each builder reads a snapshot and the query string and returns a `Page`: its template, its
context and its tables (which the CSV export finds by name). Nothing here touches HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pmsync.app.web.links import SourceLinks
from pmsync.app.web.snapshot import TREND_WEEKS, IssueRow, Snapshot, week_start
from pmsync.app.web.tables import Column, Kind, Row, Table
from pmsync.redact import redact
from pmsync.sync.links.report import voice_columns
from pmsync.sync.store.rows import StreamCounts, StreamState

WEEK_CHOICES = (12, 26, 52)
DEFAULT_WEEKS = 26


@dataclass
class Page:
    """What a template needs: a title, values, tables (each exportable as CSV), charts."""

    template: str
    title: str
    context: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


@dataclass(frozen=True)
class Chart:
    """A chart image (SVG rendered on the server) and the table holding its figures."""

    src: str
    alt: str
    table: str


def issue_url(key: str) -> str:
    return f"/issues/{quote(key, safe='')}"


def account_url(ref: str) -> str:
    return f"/accounts/{quote(ref, safe=':')}"


# ---- issues by revenue at stake ---------------------------------------------------------


@dataclass(frozen=True)
class IssueFilters:
    """The home page's filters, each checked against the values the data has."""

    area: str = ""
    segment: str = ""
    status: str = ""
    project: str = ""
    text: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str], snapshot: Snapshot) -> IssueFilters:
        def pick(name: str, allowed: Sequence[str]) -> str:
            value = args.get(name, "")
            return value if value in allowed else ""

        return cls(
            area=pick("area", snapshot.areas),
            segment=pick("segment", snapshot.segments),
            status=pick("status", snapshot.statuses),
            project=pick("project", snapshot.projects),
            text=args.get("q", "").strip()[:100],
        )

    def keep(self, row: IssueRow) -> bool:
        text = self.text.lower()
        return (
            (not self.area or self.area in row.areas)
            and (not self.segment or self.segment in row.roll.segments)
            and (not self.status or row.status == self.status)
            and (not self.project or row.project == self.project)
            and (not text or text in row.key.lower() or text in row.summary.lower())
        )

    def query(self) -> dict[str, str]:
        values = {
            "area": self.area,
            "segment": self.segment,
            "status": self.status,
            "project": self.project,
            "q": self.text,
        }
        return {k: v for k, v in values.items() if v}


def filtered_issues(snapshot: Snapshot, filters: IssueFilters) -> list[IssueRow]:
    """Issues customers ask for, in the report's order: ARR, then tickets, then key."""
    rows = [row for row in snapshot.issues.values() if filters.keep(row)]
    rows.sort(key=lambda r: (-r.arr, -r.roll.tickets, r.key))
    return rows


def recent_weeks(snapshot: Snapshot, count: int) -> list[date]:
    """The week starts of the last `count` weeks, this week last."""
    this_week = week_start(snapshot.today)
    return [this_week - timedelta(weeks=count - 1 - n) for n in range(count)]


def issues_page(
    snapshot: Snapshot, args: Mapping[str, str], links: SourceLinks, page_size: int
) -> Page:
    filters = IssueFilters.parse(args, snapshot)
    chosen = filtered_issues(snapshot, filters)
    weeks = recent_weeks(snapshot, TREND_WEEKS)
    connector_of = {ref: snapshot.world.issues[ref].connector for ref in snapshot.issues}
    voices = voice_columns(snapshot.derived, snapshot.rollup)
    rows: list[Row] = [
        _issue_row(row, weeks, links, connector_of[row.ref], voices) for row in chosen
    ]
    table = Table(
        "issues",
        "Issues by revenue at stake",
        _issue_columns(voices),
        rows,
        page_size=page_size,
        empty="No issue matches these filters.",
        note=f"ARR in {snapshot.currency}; trend: new requests per week, last {TREND_WEEKS} weeks.",
    )
    table.arrange(args, "arr", descending=True)
    trend = trend_table(snapshot, chosen, _weeks_arg(args))
    query = filters.query()
    chart_query = "&".join(f"{k}={quote(v)}" for k, v in {**query, **_weeks_query(args)}.items())
    return Page(
        "issues.html",
        "Issues by revenue at stake",
        {
            "filters": filters,
            "options": {
                "area": snapshot.areas,
                "segment": snapshot.segments,
                "status": snapshot.statuses,
                "project": snapshot.projects,
            },
            "total_arr": sum(r.arr for r in chosen),
            "count": len(chosen),
            "weeks": _weeks_arg(args),
            "week_choices": WEEK_CHOICES,
        },
        [table, trend],
        [
            Chart(
                f"/charts/trend.svg?{chart_query}",
                "New requests per week for the issues listed",
                trend.name,
            )
        ],
    )


def _issue_row(
    row: IssueRow,
    weeks: Sequence[date],
    links: SourceLinks,
    connector: str,
    voices: Sequence[str] = (),
) -> Row:
    roll = row.roll
    figures = roll.value() if voices else {}
    return {
        **{name: figures.get(name) for name in voices},
        "issue": row.key,
        "summary": row.summary,
        "status": row.status,
        "fix_versions": list(row.fix_versions),
        "release_date": row.release_date,
        "arr": roll.arr,
        "currency": roll.currency,
        "accounts": roll.accounts,
        "tickets": roll.tickets,
        "first_request": (roll.first_request or "")[:10],
        "last_request": (roll.last_request or "")[:10],
        "trend": [row.weeks.get(w, 0) for w in weeks],
        "top_accounts": ", ".join(roll.top_accounts),
        "jira": links.issue(connector, row.key) or "",
    }


# The other voices' figures and the scores, when the store has them (report.voice_columns).
_VOICE_COLUMNS: dict[str, tuple[str, Kind]] = {
    "pipeline": ("Pipeline", "money"),
    "pipeline_opportunities": ("Deals", "number"),
    "detractor_arr": ("Detractor ARR", "money"),
    "detractor_accounts": ("Detractors", "number"),
}


def _issue_columns(voices: Sequence[str]) -> tuple[Column, ...]:
    """The issue columns, with pipeline, detractors and scores after the tickets."""
    extra = tuple(
        Column(name, *_VOICE_COLUMNS[name])
        if name in _VOICE_COLUMNS
        else Column(name, f"{name} score", kind="decimal")
        for name in voices
    )
    return (*_ISSUE_COLUMNS[:8], *extra, *_ISSUE_COLUMNS[8:])


_ISSUE_COLUMNS = (
    Column("issue", "Issue", link=lambda r: issue_url(r["issue"])),
    Column("summary", "Summary", link=lambda r: issue_url(r["issue"])),
    Column("status", "Status"),
    Column("fix_versions", "Fix version"),
    Column("release_date", "Release", kind="date"),
    Column("arr", "ARR", kind="money"),
    Column("accounts", "Accounts", kind="number"),
    Column("tickets", "Tickets", kind="number"),
    Column("first_request", "First request", kind="date"),
    Column("last_request", "Last request", kind="date"),
    Column("trend", "Trend", kind="trend", sortable=False),
    Column("top_accounts", "Top accounts", sortable=False),
    Column("jira", "Jira", link=lambda r: r["jira"] or None, external=True, sortable=False),
)


def _weeks_arg(args: Mapping[str, str]) -> int:
    try:
        weeks = int(args.get("weeks", DEFAULT_WEEKS))
    except ValueError:
        return DEFAULT_WEEKS
    return weeks if weeks in WEEK_CHOICES else DEFAULT_WEEKS


def _weeks_query(args: Mapping[str, str]) -> dict[str, str]:
    return {"weeks": str(_weeks_arg(args))}


def trend_table(snapshot: Snapshot, chosen: Sequence[IssueRow], weeks: int) -> Table:
    """New requests per week for these issues: distinct tickets, each in its creation week."""
    tickets: set[str] = set()
    for row in chosen:
        tickets.update(row.roll.provenance["tickets"])
    counts = Counter(snapshot.ticket_week[t] for t in tickets if t in snapshot.ticket_week)
    rows: list[Row] = [
        {"week": week.isoformat(), "new_requests": counts.get(week, 0)}
        for week in recent_weeks(snapshot, weeks)
    ]
    return Table(
        "trend",
        "New requests per week",
        (Column("week", "Week of", kind="date"), Column("new_requests", "New requests", "number")),
        rows,
        prefix="trend_",
        page_size=len(rows) or 1,
    )


def trend_series(snapshot: Snapshot, args: Mapping[str, str]) -> tuple[list[str], list[int]]:
    """The home page's trend chart: labels and counts for the filtered issues."""
    filters = IssueFilters.parse(args, snapshot)
    table = trend_table(snapshot, filtered_issues(snapshot, filters), _weeks_arg(args))
    return [week_label(r["week"]) for r in table.rows], [int(r["new_requests"]) for r in table.rows]


def week_label(iso_day: str) -> str:
    """'2026-06-01' -> '1 Jun', for chart axes."""
    day = date.fromisoformat(iso_day)
    return f"{day.day} {day:%b}"


# ---- product areas ------------------------------------------------------------------------


def areas_page(snapshot: Snapshot, args: Mapping[str, str], page_size: int) -> Page:
    segment = args.get("segment", "") if args.get("segment") in snapshot.segments else ""
    weeks = _weeks_arg(args)
    by_area = demand_by(snapshot, "area", weeks, segment=segment)
    by_segment = demand_by(snapshot, "segment", weeks, segment="")
    summary = _areas_summary(snapshot, page_size)
    summary.arrange(args, "arr", descending=True)
    suffix = f"&segment={quote(segment)}" if segment else ""
    return Page(
        "areas.html",
        "Product areas",
        {
            "segment": segment,
            "segments": snapshot.segments,
            "weeks": weeks,
            "week_choices": WEEK_CHOICES,
        },
        [summary, by_area, by_segment],
        [
            Chart(
                f"/charts/areas.svg?by=area&weeks={weeks}{suffix}",
                "New requests per week by product area"
                + (f" ({segment} accounts)" if segment else ""),
                by_area.name,
            ),
            Chart(
                f"/charts/areas.svg?by=segment&weeks={weeks}",
                "New requests per week by customer segment",
                by_segment.name,
            ),
        ],
    )


def _areas_summary(snapshot: Snapshot, page_size: int) -> Table:
    """Tickets, distinct accounts and their ARR per product area, with tickets per segment."""
    columns = [
        Column("product_area", "Product area", link=lambda r: f"/?area={quote(r['product_area'])}"),
        Column("tickets", "Tickets", kind="number"),
        Column("accounts", "Accounts", kind="number"),
        Column("arr", f"ARR ({snapshot.currency})", kind="money"),
        *(Column(f"tickets_{s}", f"{s} tickets", kind="number") for s in snapshot.segments),
    ]
    rows = [dict(row) for row in snapshot.area_rows]
    return Table("areas", "Product areas by demand", columns, rows, page_size=page_size)


def demand_by(snapshot: Snapshot, by: str, weeks: int, *, segment: str = "") -> Table:
    """New requests per week, one column per product area (or per segment)."""
    window = recent_weeks(snapshot, weeks)
    first = window[0]
    counts: Counter[tuple[date, str]] = Counter()
    groups: set[str] = set()
    for week, area, ticket_segment in snapshot.ticket_facts:
        if week < first or (segment and ticket_segment != segment):
            continue
        group = area if by == "area" else ticket_segment
        groups.add(group)
        counts[(week, group)] += 1
    ordered = sorted(groups, key=lambda g: (-sum(counts[(w, g)] for w in window), g))
    rows: list[Row] = []
    for week in window:
        row: Row = {"week": week.isoformat()}
        row.update({group: counts.get((week, group), 0) for group in ordered})
        rows.append(row)
    name = "by_area" if by == "area" else "by_segment"
    columns = [
        Column("week", "Week of", kind="date"),
        *(Column(g, g, kind="number") for g in ordered),
    ]
    title = "New requests per week by " + ("product area" if by == "area" else "segment")
    return Table(name, title, columns, rows, prefix=f"{name}_", page_size=max(1, len(rows)))


# ---- review queue -------------------------------------------------------------------------


def review_page(
    snapshot: Snapshot, args: Mapping[str, str], links: SourceLinks, page_size: int
) -> Page:
    section = snapshot.review
    rows: list[Row] = []
    world = snapshot.world
    kind = args.get("kind", "") if args.get("kind") in REVIEW_KINDS else ""
    for values in section.as_dicts() if section else []:
        if kind and values["kind"] != kind:
            continue
        ticket = world.tickets.get(values["ticket"])
        connector = ticket.connector if ticket else ""
        key = ticket.key if ticket else values["ticket"]
        rows.append(
            {
                **values,
                "zendesk": links.ticket(connector, key) or "",
                "account": _ticket_account_name(snapshot, values["ticket"]),
            }
        )
    table = Table(
        "review",
        "Links to review",
        _REVIEW_COLUMNS,
        rows,
        page_size=page_size,
        empty="Nothing to review: every ticket found its account and its issues.",
        note=f"By revenue at stake ({snapshot.currency}). A decision is written to the "
        "overrides file and takes effect at the next cycle.",
    )
    table.arrange(args, "arr_at_stake", descending=True)
    candidates = _candidates(snapshot)
    return Page(
        "review.html",
        "Review queue",
        {
            "candidates": candidates,
            "overrides": snapshot.overrides_path,
            "kind": kind,
            "kinds": REVIEW_KINDS,
        },
        [table],
    )


def _ticket_account_name(snapshot: Snapshot, ticket_ref: str) -> str:
    link = snapshot.derived.links.account_of.get(ticket_ref)
    account = snapshot.world.accounts.get(link.target) if link else None
    return str(account.get("name", account.key)) if account else ""


def _candidates(snapshot: Snapshot) -> dict[str, list[tuple[str, str]]]:
    """ticket ref -> [(account id, label)] for the ambiguous ones."""
    found: dict[str, list[tuple[str, str]]] = {}
    for item in snapshot.derived.links.unresolved:
        if item.kind != "ticket_account" or not item.candidates:
            continue
        choices = []
        for ref in item.candidates:
            account = snapshot.world.accounts.get(ref)
            if account is None:
                continue
            arr = snapshot.account_arr(account)
            money = f", {arr:,.0f} {snapshot.currency}" if arr is not None else ""
            choices.append((account.key, f"{account.get('name', account.key)}{money}"))
        found[item.ticket] = choices
    return found


REVIEW_KINDS = {"ticket_account": "Ticket to account", "ticket_issue": "Ticket to issue"}
_REVIEW_COLUMNS = (
    Column("ticket", "Ticket", link=lambda r: r["zendesk"] or None, external=True),
    Column("subject", "Subject"),
    Column("kind", "Link", sortable=True),
    Column("reason", "Reason"),
    Column("detail", "Detail", sortable=False),
    Column("candidates", "Candidates", sortable=False),
    Column("account", "Account now"),
    Column("arr_at_stake", "ARR at stake", kind="money"),
)


# ---- freshness ----------------------------------------------------------------------------


def freshness_page(
    slots: Sequence[tuple[str, str]],
    states: Sequence[StreamState],
    snapshot: Snapshot | None,
) -> Page:
    """Each configured stream (and any other the store knows): last success, what fails.

    States are read live; record counts come from the snapshot (counting a large store on
    every request would cost more than the page may take).
    """
    now = datetime.now(UTC)
    by_slot = {(s.connector, s.stream): s for s in states}
    ordered = list(dict.fromkeys([*slots, *by_slot]))
    counts = snapshot.counts if snapshot is not None else {}
    rows = [_stream_row(slot, by_slot.get(slot), counts.get(slot), now) for slot in ordered]
    rows.sort(key=lambda r: (not r["failing"], r["stream"]))
    table = Table(
        "streams",
        "Streams",
        _FRESHNESS_COLUMNS,
        rows,
        page_size=max(1, len(rows)),
        empty="No stream is configured.",
        note="Failing streams first. Records, deletions and dead letters as of the last data "
        "refresh.",
    )
    return Page(
        "freshness.html",
        "Freshness",
        {"failing": sum(1 for r in rows if r["failing"])},
        [table],
    )


def _stream_row(
    slot: tuple[str, str], state: StreamState | None, count: StreamCounts | None, now: datetime
) -> Row:
    count = count or StreamCounts()
    success = state.last_success_at if state else None
    failures = state.failures if state else 0
    status = state.status if state else "new"
    failing = failures > 0 or status in ("error", "failed", "paused")
    return {
        "stream": f"{slot[0]}.{slot[1]}",
        "status": status,
        "last_success": success,
        "minutes_ago": round((now - success).total_seconds() / 60) if success else None,
        "records": count.live,
        "deleted": count.deleted,
        "dead_letters": count.dead_letters,
        "failures": failures,
        "next_attempt": state.next_attempt_at if state else None,
        "last_error": _short(redact(state.last_error or "")) if state and failing else "",
        "failing": failing,
    }


def _short(text: str, width: int = 300) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_FRESHNESS_COLUMNS = (
    Column("stream", "Stream"),
    Column("status", "Status"),
    Column("last_success", "Last success", kind="datetime"),
    Column("minutes_ago", "Minutes ago", kind="number"),
    Column("records", "Records", kind="number"),
    Column("deleted", "Deleted", kind="number"),
    Column("dead_letters", "Dead letters", kind="number"),
    Column("failures", "Failures in a row", kind="number"),
    Column("next_attempt", "Next attempt", kind="datetime"),
    Column("last_error", "What is failing", sortable=False),
)
