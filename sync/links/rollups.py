"""Per-issue rollups: distinct accounts asking, their ARR in one currency, tickets, provenance.

An account counts once per issue however many of its tickets link there. Deleted tickets and
accounts are not in the World, so they drop out. Every rollup carries the accounts and tickets
it was computed from, so a PM can check the figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pmsync.sync.links.linker import LinkResult
from pmsync.sync.links.models import RollupSpec
from pmsync.sync.links.world import Entity, World, ref


@dataclass(frozen=True)
class Currencies:
    """Conversion into the reporting currency: value of one unit of each currency."""

    reporting: str
    rates: dict[str, float] = field(default_factory=dict)

    def convert(self, amount: float, currency: str | None) -> float | None:
        code = (currency or self.reporting).upper()
        if code == self.reporting.upper():
            return amount
        rate = self.rates.get(code)
        return None if rate is None else amount * rate


@dataclass(frozen=True)
class Rollup:
    """The demand behind one issue."""

    name: str
    issue: str
    issue_key: str
    arr: float
    currency: str
    accounts: int
    tickets: int
    segments: tuple[str, ...]
    top_accounts: tuple[str, ...]
    first_request: str | None
    last_request: str | None
    active_users: int | None
    unlinked_tickets: int
    provenance: dict[str, Any]
    # Figures of the other voices (pipeline, surveys) and the scores, when configured
    # (sync/links/voices.py); they travel with the rollup's own figures.
    voices: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        text = (
            f"Customer ARR: {self.arr:,.0f} {self.currency} · {self.accounts} "
            f"account{'s' if self.accounts != 1 else ''} · {self.tickets} "
            f"ticket{'s' if self.tickets != 1 else ''}"
        )
        if self.top_accounts:
            text += " · top: " + ", ".join(self.top_accounts)
        pipeline = self.voices.get("pipeline")
        if pipeline:
            text += f" · pipeline: {pipeline:,.0f} {self.currency}"
        return text

    @property
    def empty(self) -> bool:
        """Nobody asks: no ticket, and no open opportunity cites the issue."""
        return self.tickets == 0 and not self.voices.get("pipeline_opportunities")

    def value(self) -> dict[str, Any]:
        """Figures that write-back and reports read, by name."""
        return {
            "arr": self.arr,
            "currency": self.currency,
            "accounts": self.accounts,
            "tickets": self.tickets,
            "segments": list(self.segments),
            "top_accounts": list(self.top_accounts),
            "first_request": self.first_request,
            "last_request": self.last_request,
            "active_users": self.active_users,
            "unlinked_tickets": self.unlinked_tickets,
            "summary": self.summary,
            "issue_key": self.issue_key,
            **self.voices,
        }


def compute_rollups(
    world: World,
    links: LinkResult,
    spec: RollupSpec,
    currencies: Currencies,
    *,
    name: str = "customer_demand",
    today: date | None = None,
    only: Collection[str] | None = None,
    usage: dict[str, int] | Literal["compute"] | None = "compute",
) -> dict[str, Rollup]:
    """A rollup for every issue in the World (an empty one where nobody asks); `only`: for
    these issues alone (an incremental derivation, whose World holds just their tickets);
    `usage`: peak active users by account key, when already known (`fixed.py`)."""
    tickets_of: dict[str, list[Entity]] = defaultdict(list)
    for ticket_ref, per_issue in links.issues_of.items():
        ticket = world.tickets.get(ticket_ref)
        if ticket is None or (
            spec.ticket_statuses and ticket.get("status") not in spec.ticket_statuses
        ):
            continue
        for issue_ref in per_issue:
            tickets_of[issue_ref].append(ticket)
    if usage == "compute":
        usage = usage_by_account(world, spec.usage_days, today or datetime.now(UTC).date())
    return {
        issue_ref: _rollup(
            world, links, spec, currencies, name, issue, tickets_of.get(issue_ref, []), usage
        )
        for issue_ref, issue in world.issues.items()
        if only is None or issue_ref in only
    }


@dataclass
class _Asking:
    """The tickets that count for one issue, and the distinct accounts behind them."""

    accounts: dict[str, Entity] = field(default_factory=dict)
    tickets_by_account: dict[str, list[Entity]] = field(default_factory=lambda: defaultdict(list))
    counted: list[Entity] = field(default_factory=list)
    unlinked: int = 0


def _rollup(
    world: World,
    links: LinkResult,
    spec: RollupSpec,
    currencies: Currencies,
    name: str,
    issue: Entity,
    tickets: list[Entity],
    usage: dict[str, int] | None,
) -> Rollup:
    asking = _asking(world, links, spec, tickets)
    converted, unconverted = _convert(asking.accounts, currencies)
    ranked = _ranked(asking.accounts, converted)
    created = sorted(str(t.get("created_at")) for t in asking.counted if t.get("created_at"))
    return Rollup(
        name=name,
        issue=issue.ref,
        issue_key=str(issue.get("key", issue.key)),
        arr=round(sum(converted.values()), 2),
        currency=currencies.reporting,
        accounts=len(asking.accounts),
        tickets=len(asking.counted),
        segments=tuple(
            sorted({str(a.get("segment")) for a in asking.accounts.values() if a.get("segment")})
        ),
        top_accounts=tuple(str(a.get("name", a.key)) for a in ranked[: spec.top_accounts]),
        first_request=created[0] if created else None,
        last_request=created[-1] if created else None,
        active_users=_active_users(asking.accounts, usage),
        unlinked_tickets=asking.unlinked,
        provenance=_provenance(issue, links, asking, ranked, converted, unconverted),
    )


def _asking(world: World, links: LinkResult, spec: RollupSpec, tickets: list[Entity]) -> _Asking:
    """Each ticket once; its account (if linked and in the rollup's segments) once per issue."""
    asking = _Asking()
    for ticket in sorted(tickets, key=lambda t: t.ref):
        link = links.account_of.get(ticket.ref)
        account = world.accounts.get(link.target) if link else None
        if account is not None and spec.segments and account.get("segment") not in spec.segments:
            continue
        asking.counted.append(ticket)
        if account is None:
            asking.unlinked += 1
            continue
        asking.accounts[account.ref] = account
        asking.tickets_by_account[account.ref].append(ticket)
    return asking


def _convert(
    accounts: dict[str, Entity], currencies: Currencies
) -> tuple[dict[str, float], list[str]]:
    """Each account's ARR in the reporting currency; accounts whose currency has no rate."""
    converted: dict[str, float] = {}
    unconverted: list[str] = []
    for account_ref, account in accounts.items():
        amount = float(account.get("arr", 0) or 0)
        value = currencies.convert(amount, account.get("currency"))
        if value is None:
            unconverted.append(account_ref)
        else:
            converted[account_ref] = value
    return converted, unconverted


def _ranked(accounts: dict[str, Entity], converted: dict[str, float]) -> list[Entity]:
    """Largest ARR in the reporting currency first; ties (equal or no ARR, or no rate for the
    currency) by account name, the way a reader scans a list, and by id last."""

    def order(account: Entity) -> tuple[float, str, str, str]:
        name = str(account.get("name", ""))
        return (-converted.get(account.ref, 0.0), name.casefold(), name, account.ref)

    return sorted(accounts.values(), key=order)


def _active_users(accounts: dict[str, Entity], usage: dict[str, int] | None) -> int | None:
    """Active users of the asking accounts; None when no usage is synced or nobody asks."""
    if usage is None or not accounts:
        return None
    return sum(usage.get(a.key, 0) for a in accounts.values())


def _provenance(
    issue: Entity,
    links: LinkResult,
    asking: _Asking,
    ranked: list[Entity],
    converted: dict[str, float],
    unconverted: list[str],
) -> dict[str, Any]:
    """What the figures were computed from: accounts (ranked), their tickets and link rules."""
    return {
        "issue": issue.ref,
        "accounts": [
            {
                "ref": a.ref,
                "name": a.get("name"),
                "arr": a.get("arr"),
                "currency": a.get("currency"),
                "arr_reporting": round(converted[a.ref], 2) if a.ref in converted else None,
                "segment": a.get("segment"),
                "tickets": [t.ref for t in asking.tickets_by_account[a.ref]],
                "rules": sorted(
                    {links.account_of[t.ref].rule for t in asking.tickets_by_account[a.ref]}
                ),
            }
            for a in ranked
        ],
        "tickets": [t.ref for t in asking.counted],
        "unconverted_currency": unconverted,
    }


def usage_by_account(world: World, days: int, today: date) -> dict[str, int] | None:
    """Peak active users per account over the window; None when no usage is synced."""
    if not world.usage:
        return None
    since = (today - timedelta(days=days)).isoformat()
    peak: dict[str, int] = defaultdict(int)
    for record in world.usage.values():
        day = str(record.get("day", ""))
        account = _usage_account(world, record)
        if account and day >= since:
            peak[account] = max(peak[account], int(record.get("active_visitors", 0) or 0))
    return dict(peak)


def _usage_account(world: World, record: Entity) -> str | None:
    """The CRM account key a usage record belongs to.

    Its account_id is the CRM account id itself, or the analytics tool's own account, synced
    as an organization (same connector) whose account_id names the CRM account.
    """
    account_id = record.get("account_id")
    if not account_id:
        return None
    direct = world.account(account_id)
    if direct is not None:
        return direct.key
    organization = world.organizations.get(ref(record.connector, str(account_id)))
    if organization is not None:
        linked = world.account(organization.get("account_id"))
        return linked.key if linked is not None else None
    return None
