"""Changes to a running demo's world, so that `plan`, `apply`, `run` and the loop closure have
something to show: an account's ARR rises, tickets arrive asking for an issue, an issue ships.

Each change goes into the simulators the way the real tool would see it (a Salesforce update
with a new SystemModstamp, a new Zendesk ticket in the incremental export, a Jira issue moved
to Done) and into the company model, whose ground truth is recomputed, so tests can check
pmsync's new figures against it. Changes are stamped where the next incremental read finds
them at once: a Zendesk ticket as old as the export's one-minute lag, a Jira edit older than
the connector's settle lag.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pmsync.simulators.company import Account, Issue, Ticket, compute_truth
from pmsync.simulators.demo import Change, Demo, ticket_record
from pmsync.simulators.jira.data import STATUSES as JIRA_STATUSES
from pmsync.simulators.jira.data import status as jira_status
from pmsync.simulators.zendesk.app import RECENT_WINDOW
from pmsync.simulators.zendesk.data import PRODUCT_TAGS

OPEN_TICKET_STATUSES = ("new", "open", "pending", "hold")
JIRA_SETTLED = 150  # seconds: older than the Jira connector's settle lag, inside its overlap
ARR_RISE = 0.25
NEW_TICKETS = 3


def raise_arr(demo: Demo) -> Change:
    """The account asking for the most issues grows: its ARR rises by a quarter."""
    company = demo.company
    asking = _issues_by_account(demo)
    candidates = sorted(
        (a for a in company.live_accounts() if a.arr_field is not None and asking.get(a.id)),
        key=lambda a: (-len(asking[a.id]), a.id),
    )
    if not candidates:
        raise ValueError("no account of the demo asks for an issue")
    account = candidates[_turn(demo, "arr") % len(candidates)]
    before = float(account.arr_field or 0)
    after = round(before * (1 + ARR_RISE), -3)
    demo.simulators.salesforce.update("Account", account.id, {"ARR__c": after})
    account.arr_field = after
    company.truth = compute_truth(company)
    keys = _keys(demo, asking[account.id])
    return Change(
        f"{account.name}'s ARR rose from {before:,.0f} to {after:,.0f} {account.currency}; "
        f"it asks for {_list(keys)}",
        keys,
    )


def new_tickets(demo: Demo, count: int = NEW_TICKETS) -> Change:
    """A big account that never asked for the most wanted open issue files `count` tickets
    naming it (the "Jira issue key" ticket field)."""
    company = demo.company
    issue = _most_wanted_open_issue(demo, _turn(demo, "tickets"))
    asking = {
        t.account
        for t in company.truth.tickets.values()
        if not t.deleted and issue.id in t.issue_ids
    }
    account, requester_id, organization_id = _new_asker(demo, asking)
    zendesk = demo.simulators.zendesk
    stamp = zendesk.now() - RECENT_WINDOW
    with zendesk.lock:
        first = max(zendesk.tickets.items, default=0) + 1
    for n in range(count):
        ticket = Ticket(
            id=first + n,
            requester_id=requester_id,
            organization_id=organization_id,
            area=issue.area,
            tags=list(PRODUCT_TAGS[issue.area][:1]),
            subject=f"We need this too: {issue.summary}",
            description=f"{account.name} asks for {issue.key}: {issue.summary.lower()}.",
            status="new",
            priority="normal",
            type="question",
            channel="web",
            created_age=RECENT_WINDOW,
            updated_age=RECENT_WINDOW,
            field_text=issue.key,
        )
        zendesk.put_ticket(ticket_record(ticket, zendesk.base_url, stamp + RECENT_WINDOW), at=stamp)
        company.tickets.append(ticket)
    company.truth = compute_truth(company)
    return Change(
        f"{count} new tickets from {account.name} ({account.arr:,.0f} {account.currency} ARR) "
        f"ask for {issue.key} ({issue.summary})",
        (issue.key,),
    )


def ship_issue(demo: Demo) -> Change:
    """The open issue with the most open tickets waiting on it moves to Done."""
    issue = _most_waited_for_open_issue(demo, _turn(demo, "ship"))
    jira = demo.simulators.jira
    at = jira.clock() - JIRA_SETTLED
    jira.update_issue(
        issue.id,
        {
            "status": jira_status("Done"),
            "resolution": {"id": "10000", "name": "Done"},
            "resolutiondate": int(at * 1000),
        },
        at=at,
    )
    issue.status = "Done"
    waiting = len(_open_tickets_waiting(demo)[issue.id])
    return Change(
        f"{issue.key} ({issue.summary}) is Done; {waiting} open tickets wait on it. Jira's "
        "search shows a change once its minute has settled: sync in a minute or two",
        (issue.key,),
    )


CHANGES: dict[str, tuple[str, Callable[[Demo], Change]]] = {
    "arr": ("an account's ARR rises", raise_arr),
    "tickets": (f"{NEW_TICKETS} tickets arrive asking for an issue", new_tickets),
    "ship": ("an issue ships: its open tickets get a note", ship_issue),
}


# ---- choosing what changes ----------------------------------------------------------------


def _turn(demo: Demo, kind: str) -> int:
    """How many times this change ran before: each run picks the next candidate."""
    turns: Counter[str] = demo.turns
    turns[kind] += 1
    return turns[kind] - 1


def _issues_by_account(demo: Demo) -> dict[str, set[str]]:
    asking: dict[str, set[str]] = {}
    for ticket in demo.company.truth.tickets.values():
        if not ticket.deleted and ticket.account is not None:
            asking.setdefault(ticket.account, set()).update(ticket.issue_ids)
    return asking


def _keys(demo: Demo, issue_ids: set[str]) -> tuple[str, ...]:
    keys = {i.id: i.key for i in demo.company.issues}
    return tuple(sorted((keys[i] for i in issue_ids), key=_natural))


def _natural(key: str) -> tuple[str, int]:
    project, _, number = key.partition("-")
    return project, int(number) if number.isdigit() else 0


def _list(keys: tuple[str, ...], shown: int = 5) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _open_issues(demo: Demo) -> list[Issue]:
    return [
        i
        for i in demo.company.issues
        if not i.deleted and JIRA_STATUSES[i.status][1] != "done" and i.old_key is None
    ]


def _most_wanted_open_issue(demo: Demo, turn: int) -> Issue:
    demand = demo.company.truth.demand()
    ranked = sorted(_open_issues(demo), key=lambda i: (-demand[i.id].arr, i.key))
    return ranked[turn % len(ranked)]


def _open_tickets_waiting(demo: Demo) -> dict[str, list[int]]:
    status = {t.id: t.status for t in demo.company.tickets}
    waiting: dict[str, list[int]] = {}
    for ticket in demo.company.truth.tickets.values():
        if ticket.deleted or status[ticket.ticket_id] not in OPEN_TICKET_STATUSES:
            continue
        for issue_id in ticket.issue_ids:
            waiting.setdefault(issue_id, []).append(ticket.ticket_id)
    return waiting


def _most_waited_for_open_issue(demo: Demo, turn: int) -> Issue:
    waiting = _open_tickets_waiting(demo)
    ranked = sorted(
        (i for i in _open_issues(demo) if waiting.get(i.id)),
        key=lambda i: (-len(waiting[i.id]), i.key),
    )
    if not ranked:
        raise ValueError("no open issue of the demo has open tickets waiting on it")
    return ranked[turn % len(ranked)]


def _new_asker(demo: Demo, asking: set[str | None]) -> tuple[Account, int, int]:
    """The largest account not asking yet whose tickets the rules link by its organization:
    (account, a requester of it, its organization)."""
    company = demo.company
    by_id = {a.id: a for a in company.live_accounts()}
    tickets = {t.id: t for t in company.tickets}
    seen: dict[str, tuple[int, int]] = {}
    for truth in company.truth.tickets.values():
        ticket = tickets[truth.ticket_id]
        if (
            truth.rule == "organization_external_id"
            and truth.account in by_id
            and truth.account not in asking
            and ticket.organization_id is not None
        ):
            seen.setdefault(truth.account, (ticket.requester_id, ticket.organization_id))
    if not seen:
        raise ValueError("every account of the demo already asks for that issue")
    account = max((by_id[a] for a in seen), key=lambda a: (a.arr, a.id))
    requester_id, organization_id = seen[account.id]
    return account, requester_id, organization_id
