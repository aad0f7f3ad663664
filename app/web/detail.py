"""The detail pages: one issue (who asks, through which rule, what pmsync wrote and will write)
and one account (what it waits for and when it ships, its usage, its tickets)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from pmsync.app.web.links import SourceLinks
from pmsync.app.web.pages import Chart, Page, account_url, issue_url, recent_weeks
from pmsync.app.web.snapshot import TREND_WEEKS, IssueRow, Snapshot, Written
from pmsync.app.web.tables import Column, Row, Table
from pmsync.sync.links.world import Entity
from pmsync.sync.writeback.figures import issue_figures

USAGE_DAYS = 30  # the usage chart and the "active users" figure


# ---- issue --------------------------------------------------------------------------------


def issue_page(
    snapshot: Snapshot,
    issue: IssueRow | Entity,
    args: Mapping[str, str],
    links: SourceLinks,
    page_size: int,
) -> Page:
    row = issue if isinstance(issue, IssueRow) else None
    entity = snapshot.world.issues[issue.ref]
    key = str(entity.get("key", entity.key))
    accounts = _asking_accounts(snapshot, row, page_size)
    tickets = _issue_tickets(snapshot, row, links, page_size)
    planned = _planned_writes(snapshot, entity)
    written = _written(snapshot, entity, page_size)
    accounts.arrange(args, "arr", descending=True)
    tickets.arrange(args, "created", descending=True)
    weeks = recent_weeks(snapshot, TREND_WEEKS)
    return Page(
        "issue.html",
        f"{key}: {entity.get('summary', '')}",
        {
            "issue": entity,
            "key": key,
            "row": row,
            "jira": links.issue(entity.connector, key),
            "trend": [row.weeks.get(w, 0) for w in weeks] if row else [],
            "currency": snapshot.currency,
        },
        [accounts, tickets, planned, written],
    )


def _asking_accounts(snapshot: Snapshot, row: IssueRow | None, page_size: int) -> Table:
    rows: list[Row] = []
    for asked in row.roll.provenance["accounts"] if row else []:
        account = snapshot.world.accounts.get(asked["ref"])
        rows.append(
            {
                "account": asked["name"] or asked["ref"],
                "ref": asked["ref"],
                "segment": asked["segment"] or "",
                "arr": asked["arr_reporting"],
                "arr_native": asked["arr"],
                "native_currency": asked["currency"] or "",
                "active_users": _active_users(snapshot, asked["ref"]) if account else None,
                "tickets": len(asked["tickets"]),
                "rules": list(asked["rules"]),
            }
        )
    columns = (
        Column("account", "Account", link=lambda r: account_url(r["ref"])),
        Column("segment", "Segment"),
        Column("arr", f"ARR ({snapshot.currency})", kind="money"),
        Column("arr_native", "ARR (own currency)", kind="money"),
        Column("native_currency", "Currency"),
        Column("active_users", f"Active users ({USAGE_DAYS} d peak)", kind="number"),
        Column("tickets", "Tickets", kind="number"),
        Column("rules", "Matched to the account by"),
    )
    return Table(
        "accounts",
        "Accounts asking",
        columns,
        rows,
        prefix="accounts_",
        page_size=page_size,
        empty="No account asks for this issue.",
        note="Each account counts once, however many tickets it filed.",
    )


def _issue_tickets(
    snapshot: Snapshot, row: IssueRow | None, links: SourceLinks, page_size: int
) -> Table:
    derived = snapshot.derived
    rows: list[Row] = []
    for ticket_ref in row.roll.provenance["tickets"] if row else []:
        ticket = snapshot.world.tickets.get(ticket_ref)
        if ticket is None:
            continue
        account_link = derived.links.account_of.get(ticket_ref)
        account = snapshot.world.accounts.get(account_link.target) if account_link else None
        issue_link = derived.links.issues_of.get(ticket_ref, {}).get(row.ref) if row else None
        rows.append(
            {
                "ticket": ticket.key,
                "zendesk": links.ticket(ticket.connector, ticket.key) or "",
                "subject": str(ticket.get("subject", "")),
                "status": str(ticket.get("status", "")),
                "created": str(ticket.get("created_at", ""))[:10],
                "product_area": snapshot.area_of(ticket),
                "account": str(account.get("name", account.key)) if account else "",
                "account_ref": account.ref if account else "",
                "issue_rule": issue_link.rule if issue_link else "",
                "account_rule": account_link.rule if account_link else "",
            }
        )
    columns = (
        Column("ticket", "Ticket", link=lambda r: r["zendesk"] or None, external=True),
        Column("subject", "Subject"),
        Column("status", "Status"),
        Column("created", "Created", kind="date"),
        Column("product_area", "Product area"),
        Column("account", "Account", link=lambda r: account_url(r["account_ref"]) or None),
        Column("issue_rule", "Linked to the issue by"),
        Column("account_rule", "Linked to the account by"),
    )
    return Table(
        "tickets",
        "Tickets asking",
        columns,
        rows,
        prefix="tickets_",
        page_size=page_size,
        empty="No ticket asks for this issue.",
    )


def _planned_writes(snapshot: Snapshot, issue: Entity) -> Table:
    """Each declared issue write-back field: the value now, and whether the next cycle writes it.

    Compared with the provenance document pmsync last stored on the issue (an issue property
    holding the figures written with it) when the write-back declares one.
    """
    rows: list[Row] = []
    written = snapshot.written.get((issue.connector, issue.key), [])
    for name, spec in snapshot.writebacks.items():
        if spec.target != "issue" or spec.connector not in (issue.connector, "jira"):
            continue
        figures, _empty = issue_figures(snapshot.derived, spec.rollup).get(issue.ref, ({}, True))
        before = _last_figures(written, spec.property)
        for declared, figure in spec.fields.items():
            now = figures.get(figure)
            rows.append(
                {
                    "writeback": name,
                    "field": declared,
                    "figure": figure,
                    "value": now,
                    "last_written": before.get(figure, "") if before is not None else "",
                    "next_cycle": _next_cycle(now, before, figure),
                }
            )
    columns = (
        Column("writeback", "Write-back"),
        Column("field", "Jira field"),
        Column("figure", "Figure"),
        Column("value", "Value now"),
        Column("last_written", "Last written"),
        Column("next_cycle", "Next cycle"),
    )
    return Table(
        "planned",
        "Write-back: what the next cycle writes",
        columns,
        rows,
        prefix="planned_",
        page_size=max(1, len(rows)),
        empty="No write-back is declared for issues.",
    )


def _last_figures(written: list[Written], prop: str | None) -> dict[str, Any] | None:
    if prop is None:
        return None
    for entry in written:
        if entry.field == f"property:{prop}" and entry.state == "written":
            value = entry.value
            if isinstance(value, str):
                import orjson

                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    return None
            figures = value.get("figures") if isinstance(value, dict) else None
            return figures if isinstance(figures, dict) else None
    return None


def _next_cycle(now: Any, before: dict[str, Any] | None, figure: str) -> str:
    if before is None:
        return "compared with Jira at the next cycle"
    if figure not in before:
        return "writes it"
    old = before[figure]
    if isinstance(old, list):
        old = ", ".join(map(str, old))
    if old == now or (_number(old) is not None and _number(old) == _number(now)):
        return "unchanged"
    return "writes the new value"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return round(float(value), 2)


def _written(snapshot: Snapshot, issue: Entity, page_size: int) -> Table:
    rows: list[Row] = []
    for entry in snapshot.written.get((issue.connector, issue.key), []):
        rows.append(
            {
                "field": entry.field,
                "value": _describe(entry),
                "state": entry.state,
                "at": entry.at,
                "error": entry.error,
            }
        )
    columns = (
        Column("field", "Field"),
        Column("value", "Value"),
        Column("state", "State"),
        Column("at", "When", kind="datetime"),
        Column("error", "Error", sortable=False),
    )
    return Table(
        "written",
        "Write-back: what pmsync wrote to Jira",
        columns,
        rows,
        prefix="written_",
        page_size=page_size,
        empty="pmsync has not written to this issue.",
        note="Written: recorded in pmsync's ledger; pending or failed: a write in flight.",
    )


def _describe(entry: Written) -> str:
    """A ledger value for people: figures as they are, provenance documents summarised."""
    value = entry.value
    if entry.field.startswith("property:"):
        if isinstance(value, str):
            import orjson

            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return "provenance document"
        accounts = value.get("accounts", []) if isinstance(value, dict) else []
        return f"provenance document ({len(accounts)} accounts)"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return "" if value is None else str(value)


def _active_users(snapshot: Snapshot, account_ref: str) -> int | None:
    records = snapshot.usage_of_account.get(account_ref)
    if not records:
        return None
    since = (snapshot.today - timedelta(days=USAGE_DAYS)).isoformat()
    return max(
        (int(r.get("active_visitors", 0) or 0) for r in records if str(r.get("day")) >= since),
        default=0,
    )


# ---- account ------------------------------------------------------------------------------


def account_page(
    snapshot: Snapshot,
    account: Entity,
    args: Mapping[str, str],
    links: SourceLinks,
    page_size: int,
) -> Page:
    requests = _account_requests(snapshot, account, page_size)
    requests.arrange(args, "arr_at_stake", descending=True)
    usage = usage_table(snapshot, account)
    tickets = _account_tickets(snapshot, account, links, page_size)
    tickets.arrange(args, "created", descending=True)
    return Page(
        "account.html",
        str(account.get("name", account.key)),
        {
            "account": account,
            "arr": snapshot.account_arr(account),
            "currency": snapshot.currency,
            "salesforce": links.account(account.connector, account.key),
            "active_users": _active_users(snapshot, account.ref),
            "open_requests": sum(1 for r in requests.rows if r["shipped"] != "yes"),
        },
        [requests, usage, tickets],
        [Chart(f"/charts/usage.svg?account={account.ref}", "Active users per day", usage.name)]
        if usage.rows
        else [],
    )


def _account_requests(snapshot: Snapshot, account: Entity, page_size: int) -> Table:
    """The issues this account's tickets ask for: status, fix version, release date."""
    derived = snapshot.derived
    asked: dict[str, list[Entity]] = {}
    for ticket in snapshot.tickets_of_account.get(account.ref, []):
        for issue_ref in derived.links.issues_of.get(ticket.ref, {}):
            asked.setdefault(issue_ref, []).append(ticket)
    rows: list[Row] = []
    for issue_ref, tickets in asked.items():
        issue = snapshot.world.issues.get(issue_ref)
        if issue is None:
            continue
        row = snapshot.issues.get(issue_ref)
        done = str(issue.get("status_category", "")) == "done"
        released = bool(issue.get("fix_versions_released", False))
        rows.append(
            {
                "issue": str(issue.get("key", issue.key)),
                "summary": str(issue.get("summary", "")),
                "status": str(issue.get("status", "")),
                "fix_versions": [str(v) for v in issue.get("fix_versions", [])],
                "release_date": str(issue.get("release_date", "") or ""),
                "shipped": "yes" if released else ("done" if done else "no"),
                "tickets": len(tickets),
                "last_request": max(str(t.get("created_at", "")) for t in tickets)[:10],
                "arr_at_stake": row.arr if row else 0.0,
            }
        )
    columns = (
        Column("issue", "Issue", link=lambda r: issue_url(r["issue"])),
        Column("summary", "Summary", link=lambda r: issue_url(r["issue"])),
        Column("status", "Status"),
        Column("fix_versions", "Fix version"),
        Column("release_date", "Release date", kind="date"),
        Column("shipped", "Released"),
        Column("tickets", "Tickets from this account", kind="number"),
        Column("last_request", "Last request", kind="date"),
        Column("arr_at_stake", f"ARR asking, all accounts ({snapshot.currency})", kind="money"),
    )
    return Table(
        "requests",
        "What this account is waiting for",
        columns,
        rows,
        prefix="requests_",
        page_size=page_size,
        empty="This account's tickets ask for no issue.",
        note="Released: every fix version of the issue is released; done: the issue is done "
        "with no released fix version.",
    )


def usage_table(snapshot: Snapshot, account: Entity) -> Table:
    """Daily usage over the last USAGE_DAYS days (every usage record of the day summed)."""
    since = snapshot.today - timedelta(days=USAGE_DAYS)
    days: dict[str, dict[str, float]] = {}
    for record in snapshot.usage_of_account.get(account.ref, []):
        day = str(record.get("day", ""))[:10]
        if not day or date.fromisoformat(day) < since:
            continue
        slot = days.setdefault(day, {"active_users": 0, "events": 0, "minutes": 0.0})
        slot["active_users"] += int(record.get("active_visitors", 0) or 0)
        slot["events"] += int(record.get("events", 0) or 0)
        slot["minutes"] += float(record.get("minutes", 0) or 0)
    rows: list[Row] = [{"day": day, **values} for day, values in sorted(days.items())]
    columns = (
        Column("day", "Day", kind="date"),
        Column("active_users", "Active users", kind="number"),
        Column("events", "Events", kind="number"),
        Column("minutes", "Minutes", kind="number"),
    )
    return Table(
        "usage",
        f"Usage, last {USAGE_DAYS} days",
        columns,
        rows,
        prefix="usage_",
        page_size=max(1, len(rows)),
        empty="No usage is synced for this account.",
    )


def _account_tickets(
    snapshot: Snapshot, account: Entity, links: SourceLinks, page_size: int
) -> Table:
    derived = snapshot.derived
    rows: list[Row] = []
    for ticket in snapshot.tickets_of_account.get(account.ref, []):
        keys = sorted(
            str(snapshot.world.issues[i].get("key", i))
            for i in derived.links.issues_of.get(ticket.ref, {})
            if i in snapshot.world.issues
        )
        rows.append(
            {
                "ticket": ticket.key,
                "zendesk": links.ticket(ticket.connector, ticket.key) or "",
                "subject": str(ticket.get("subject", "")),
                "status": str(ticket.get("status", "")),
                "created": str(ticket.get("created_at", ""))[:10],
                "product_area": snapshot.area_of(ticket),
                "issues": keys,
            }
        )
    columns = (
        Column("ticket", "Ticket", link=lambda r: r["zendesk"] or None, external=True),
        Column("subject", "Subject"),
        Column("status", "Status"),
        Column("created", "Created", kind="date"),
        Column("product_area", "Product area"),
        Column("issues", "Asks for", sortable=False),
    )
    return Table(
        "tickets",
        "Tickets",
        columns,
        rows,
        prefix="tickets_",
        page_size=page_size,
        empty="No ticket is linked to this account.",
    )
