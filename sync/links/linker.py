"""Link each ticket to its account and its issues by declared rules; never guess.

ticket -> account: rules in order; the first that finds exactly one account wins; a rule that
finds several makes the ticket ambiguous (nothing is linked until product ops decides in the
override file). ticket -> issue: every enabled rule adds links; each link records its rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pmsync.errors import ConfigError, Problem
from pmsync.sync.links.aliases import known_projects, project_of
from pmsync.sync.links.models import LinkSettings
from pmsync.sync.links.world import Entity, World
from pmsync.tomlfile import read_toml

Kind = Literal["ticket_account", "ticket_issue"]
NO_ACCOUNT = "none"


@dataclass(frozen=True, slots=True)
class Link:
    """One link and the rule that made it."""

    kind: Kind
    ticket: str
    target: str
    rule: str


@dataclass(frozen=True)
class Unresolved:
    """A ticket the rules could not link with certainty, for `pmsync links review`."""

    ticket: str
    kind: Kind
    reason: Literal["ambiguous", "missing"]
    detail: str
    candidates: tuple[str, ...] = ()
    rule: str = ""  # for an issue reference: the rule that read it


@dataclass
class Overrides:
    """Manual decisions: ticket -> account (or none), ticket -> issue keys to add or remove."""

    file: str | None = None
    account: dict[str, str] = field(default_factory=dict)
    issues: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> Overrides:
        """Read the overrides file; ConfigError names each entry that is not a decision."""
        if path is None or not path.exists():
            return cls(file=str(path) if path else None)
        file = str(path)
        data = read_toml(path)
        problems: list[Problem] = []
        for section in set(data) - {"ticket_account", "ticket_issue"}:
            problems.append(
                Problem(
                    file,
                    section,
                    "unknown section; did you mean [ticket_account] or [ticket_issue]?",
                )
            )
        accounts: dict[str, str] = {}
        issues: dict[str, list[str]] = {}
        for section in ("ticket_account", "ticket_issue"):
            table = data.get(section, {})
            if not isinstance(table, dict):
                problems.append(Problem(file, section, "must be a table of ticket = decision"))
                continue
            for ticket, decision in table.items():
                where = f'{section}."{ticket}"'
                if section == "ticket_account" and isinstance(decision, str):
                    accounts[str(ticket)] = decision
                elif (
                    section == "ticket_issue"
                    and isinstance(decision, str | list)
                    and all(
                        isinstance(k, str) for k in (decision if isinstance(decision, list) else [])
                    )
                ):
                    issues[str(ticket)] = decision if isinstance(decision, list) else [decision]
                else:
                    expected = (
                        'an account id or name, or "none"'
                        if section == "ticket_account"
                        else "a list of issue keys"
                    )
                    problems.append(Problem(file, where, f"must be {expected}"))
        ConfigError.collect(problems)
        return cls(file=file, account=accounts, issues=issues)

    def for_ticket(self, table: dict[str, Any], ticket: Entity) -> Any:
        return table.get(ticket.ref, table.get(ticket.key))


@dataclass
class LinkResult:
    account_of: dict[str, Link] = field(default_factory=dict)
    issues_of: dict[str, dict[str, Link]] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def links(self) -> list[Link]:
        found = list(self.account_of.values())
        for per_ticket in self.issues_of.values():
            found.extend(per_ticket.values())
        return found


class Linker:
    """Applies the declared rules to a World."""

    def __init__(
        self, settings: LinkSettings, overrides: Overrides, *, projects: Sequence[str] = ()
    ) -> None:
        self.settings = settings
        self.overrides = overrides
        self.projects = tuple(projects)  # configured issue projects, beside those in the store
        self.free_mail = {d.lower() for d in settings.ticket_account.free_mail_domains}
        self.key_pattern = re.compile(settings.ticket_issue.text_pattern)
        self._known: set[str] | None = None

    def named_keys(self, world: World, tickets: Iterable[Entity] | None = None) -> set[str]:
        """Every issue key a key-reading rule finds in some ticket (upper case): of `tickets`,
        or of the World's."""
        found: set[str] = set()
        for ticket in world.tickets.values() if tickets is None else tickets:
            for keys in self._keys_by_rule(world, ticket).values():
                found.update(keys)
        return found

    def _keys_by_rule(self, world: World, ticket: Entity) -> dict[str, list[str]]:
        """Issue keys a ticket names, by the enabled rule that reads them.

        The text rule keeps only keys of projects the store knows: ISO-9001, UTF-8 or COVID-19
        look like keys and are not issues.
        """
        rules = self.settings.ticket_issue.rules
        found: dict[str, list[str]] = {}
        if "override" in rules:
            keys = self.overrides.for_ticket(self.overrides.issues, ticket) or []
            found["override"] = [str(k).lstrip("-").upper() for k in keys]
        if "ticket_field" in rules:
            found["ticket_field"] = [str(k).upper() for k in ticket.get("issue_keys", [])]
        if "text" in rules:
            if self._known is None:
                self._known = known_projects(world, self.projects)
            text = f"{ticket.get('subject', '')}\n{ticket.get('description', '')}"
            keys = sorted({m.group(0).upper() for m in self.key_pattern.finditer(text)})
            found["text"] = [k for k in keys if project_of(k) in self._known]
        return found

    def link(self, world: World) -> LinkResult:
        """Link every ticket of the World."""
        result = self.start(world)
        self.link_tickets(world, world.tickets.values(), result)
        return result

    def start(self, world: World) -> LinkResult:
        """An empty result with the overrides' problems; `link_tickets` then fills it, batch
        by batch (a full derivation does not hold every ticket's record at once)."""
        result = LinkResult()
        self._check_overrides(world, result)
        return result

    def link_tickets(self, world: World, tickets: Iterable[Entity], result: LinkResult) -> None:
        """Add the links of `tickets` (in order) to `result`."""
        for ticket in tickets:
            self._link_account(world, ticket, result)
            self._link_issues(world, ticket, result)

    # ---- ticket -> account ------------------------------------------------------------

    def _link_account(self, world: World, ticket: Entity, result: LinkResult) -> None:
        for rule in self.settings.ticket_account.rules:
            found, detail = self._account_candidates(world, ticket, rule)
            if found is None:
                continue
            if found == [NO_ACCOUNT]:
                return  # product ops said: this ticket has no account
            unique = sorted({a.ref for a in found})
            if len(unique) == 1:
                result.account_of[ticket.ref] = Link("ticket_account", ticket.ref, unique[0], rule)
                return
            if len(unique) > 1:
                result.unresolved.append(
                    Unresolved(ticket.ref, "ticket_account", "ambiguous", detail, tuple(unique))
                )
                return
        result.unresolved.append(
            Unresolved(ticket.ref, "ticket_account", "missing", self._missing_detail(world, ticket))
        )

    def _account_candidates(  # noqa: PLR0911 - one early answer per rule
        self, world: World, ticket: Entity, rule: str
    ) -> tuple[list[Any] | None, str]:
        """Accounts a rule finds (None: the rule does not apply), and a detail for review."""
        if rule == "override":
            choice = self.overrides.for_ticket(self.overrides.account, ticket)
            if choice is None:
                return None, ""
            if choice.lower() == NO_ACCOUNT:
                return [NO_ACCOUNT], "override"
            account = _find_account(world, choice)
            return ([account] if account else None), "override"
        if rule in ("organization_external_id", "organization_account_field"):
            org = world.organization(ticket)
            if org is None:
                return None, ""
            field_name = "external_id" if rule == "organization_external_id" else "account_id"
            account = world.account(org.get(field_name))
            return ([account] if account else None), f"organization {org.key}"
        email = world.requester_email(ticket)
        if not email:
            return None, ""
        if rule == "contact_email":
            contacts = world.contacts_by_email.get(email, [])
            accounts = [world.account(c.get("account_id")) for c in contacts]
            found = [a for a in accounts if a is not None]
            return (found or None), f"contact e-mail {email}"
        if rule == "email_domain":
            domain = email.rsplit("@", 1)[-1]
            if domain in self.free_mail:
                return None, ""
            found = world.accounts_by_domain.get(domain, [])
            return (list(found) or None), f"e-mail domain {domain}"
        return None, ""

    def _missing_detail(self, world: World, ticket: Entity) -> str:
        email = world.requester_email(ticket)
        if email and email.rsplit("@", 1)[-1] in self.free_mail:
            return f"requester uses free mail ({email.rsplit('@', 1)[-1]})"
        if world.organization(ticket) is None and not email:
            return "no organization and no requester e-mail"
        return "no rule found an account"

    # ---- ticket -> issues ---------------------------------------------------------------

    def _link_issues(self, world: World, ticket: Entity, result: LinkResult) -> None:
        found: dict[str, Link] = {}
        removed: set[str] = set()
        rules = self.settings.ticket_issue.rules
        for rule in rules:
            for issue in self._issues_by_rule(world, ticket, rule, removed):
                found.setdefault(issue.ref, Link("ticket_issue", ticket.ref, issue.ref, rule))
        for gone in removed:
            found.pop(gone, None)
        if found:
            result.issues_of[ticket.ref] = found
        for reader, dangling in self._dangling_issue_refs(world, ticket, rules).items():
            result.unresolved.append(
                Unresolved(
                    ticket.ref,
                    "ticket_issue",
                    "missing",
                    f"{reader} refers to issues not in the store: " + ", ".join(dangling),
                    rule=reader,
                )
            )

    def _dangling_issue_refs(
        self, world: World, ticket: Entity, rules: Sequence[str]
    ) -> dict[str, list[str]]:
        """By rule: issue keys or ids a ticket names that match no synced issue (old keys of
        moved issues match their issue)."""
        missing: dict[str, list[str]] = {}
        for rule, keys in self._keys_by_rule(world, ticket).items():
            if rule == "override":
                continue  # reported as a problem of the overrides file
            unknown = sorted({k for k in keys if k not in world.by_issue_key})
            if unknown:
                missing[rule] = unknown
        if "jira_integration" in rules:
            gone = sorted(
                {
                    str(link.get("issue_key") or link.get("issue_id"))
                    for link in world.links_by_ticket.get(ticket.ref, [])
                    if str(link.get("issue_id")) not in world.by_issue_id
                    and str(link.get("issue_key", "")).upper() not in world.by_issue_key
                }
            )
            if gone:
                missing["jira_integration"] = gone
        return missing

    def _issues_by_rule(
        self, world: World, ticket: Entity, rule: str, removed: set[str]
    ) -> list[Entity]:
        if rule == "override":
            issues = []
            for key in self.overrides.for_ticket(self.overrides.issues, ticket) or []:
                issue = world.by_issue_key.get(key.lstrip("-").upper())
                if issue is None:
                    continue
                if key.startswith("-"):
                    removed.add(issue.ref)
                else:
                    issues.append(issue)
            return issues
        if rule == "jira_integration":
            issues = []
            for link in world.links_by_ticket.get(ticket.ref, []):
                issue = world.by_issue_id.get(str(link.get("issue_id"))) or world.by_issue_key.get(
                    str(link.get("issue_key", "")).upper()
                )
                if issue is not None:
                    issues.append(issue)
            return issues
        if rule in ("ticket_field", "text"):
            keys = self._keys_by_rule(world, ticket).get(rule, [])
            return [world.by_issue_key[k] for k in keys if k in world.by_issue_key]
        return []

    # ---- overrides ----------------------------------------------------------------------

    def _check_overrides(self, world: World, result: LinkResult) -> None:
        """Overrides that name an unknown account or issue are reported, not applied."""
        file = self.overrides.file
        for ticket, choice in self.overrides.account.items():
            if choice.lower() != NO_ACCOUNT and _find_account(world, choice) is None:
                result.problems.append(
                    Problem(
                        file, f'ticket_account."{ticket}"', f"no account '{choice}' in the store"
                    )
                )
        for ticket, keys in self.overrides.issues.items():
            for key in keys:
                if key.lstrip("-").upper() not in world.by_issue_key:
                    result.problems.append(
                        Problem(file, f'ticket_issue."{ticket}"', f"no issue '{key.lstrip('-')}'")
                    )


def _find_account(world: World, choice: str) -> Entity | None:
    """An account by id, or by exact name when that name is unique."""
    account = world.account(choice)
    if account is not None:
        return account
    named = [a for a in world.accounts.values() if str(a.get("name", "")) == choice]
    return named[0] if len(named) == 1 else None
