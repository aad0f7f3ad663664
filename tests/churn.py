"""Churn: everything that changes in a real company between two polls, in one go.

Each change is made at the simulator and in the company model alike, then the model's ground
truth is recomputed (simulators/company.py, which knows nothing of pmsync), so a test can judge
what pmsync wrote against what the change should have produced.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from pmsync.simulators.company import Ticket, compute_truth
from pmsync.simulators.demo import Demo, ticket_record


@dataclass
class Churn:
    """What changed, for messages and sanity checks."""

    counts: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))


def churn(demo: Demo, seed: int = 5) -> Churn:
    """Change accounts, tickets, links, issues and organizations at once."""
    rng = random.Random(seed)
    done = Churn()
    _accounts(demo, rng, done)
    _tickets(demo, rng, done)
    _links(demo, rng, done)
    _issues(demo, rng, done)
    _organizations(demo, rng, done)
    demo.company.truth = compute_truth(demo.company)
    return done


def _asking_accounts(demo: Demo) -> list[str]:
    truth = demo.company.truth.demand()
    return sorted({a for d in truth.values() for a in d.accounts})


def _accounts(demo: Demo, rng: random.Random, done: Churn) -> None:
    salesforce = demo.simulators.salesforce
    asking = _asking_accounts(demo)
    by_id = {a.id: a for a in demo.company.accounts}
    for account_id in rng.sample(asking, 6):  # ARR changes
        account = by_id[account_id]
        account.arr_field = float(round(account.arr * rng.uniform(0.5, 2.0), -2))
        salesforce.update("Account", account_id, {"ARR__c": account.arr_field})
        done.counts["arr changed"] += 1
    for account_id in rng.sample(asking, 3):  # a new website: the e-mail domain rule moves
        account = by_id[account_id]
        account.domain = f"renamed-{account.domain}"
        account.website = f"https://www.{account.domain}"
        salesforce.update("Account", account_id, {"Website": account.website})
        done.counts["website changed"] += 1
    remaining = [a for a in asking if not by_id[a].deleted]
    for account_id in rng.sample(remaining, 2):  # deleted, with its contacts
        by_id[account_id].deleted = True
        salesforce.soft_delete("Account", account_id)
        for contact in demo.company.contacts:
            if contact.account_id == account_id and not contact.deleted:
                contact.deleted = True
                salesforce.soft_delete("Contact", contact.id)
        done.counts["accounts deleted"] += 1


def _tickets(demo: Demo, rng: random.Random, done: Churn) -> None:
    zendesk = demo.simulators.zendesk
    company = demo.company
    live_issues = [i for i in company.issues if not i.deleted]
    customers = [r for r in company.requesters if r.account_id]
    next_id = max(t.id for t in company.tickets) + 1
    now = zendesk.now()
    for n in range(8):  # new tickets asking for issues, by key field or integration link
        requester = rng.choice(customers)
        issue = rng.choice(live_issues)
        ticket = Ticket(
            id=next_id + n,
            requester_id=requester.id,
            organization_id=requester.organization_id,
            area=issue.area,
            tags=[],
            subject=f"Please: {issue.summary}",
            description="We need this.",
            status="open",
            priority="normal",
            type="question",
            channel="web",
            created_age=90,
            updated_age=90,
            field_text=issue.key if n % 2 == 0 else None,
        )
        company.tickets.append(ticket)
        zendesk.put_ticket(ticket_record(ticket, zendesk.base_url, now), at=now - 90)
        if n % 2:
            ticket.integration_links.append((issue.id, issue.key))
            zendesk.add_jira_link(ticket.id, issue.id, issue.key)
        done.counts["tickets added"] += 1
    asking = [t for t in company.tickets if not t.deleted and (t.field_text or t.integration_links)]
    for ticket in rng.sample(asking, 6):
        ticket.deleted = True
        zendesk.delete_ticket(ticket.id, at=now - 90)
        done.counts["tickets deleted"] += 1


def _links(demo: Demo, rng: random.Random, done: Churn) -> None:
    zendesk = demo.simulators.zendesk
    company = demo.company
    live_issues = [i for i in company.issues if not i.deleted]
    by_pair = {
        (int(link["ticket_id"]), str(link["issue_id"])): link_id
        for link_id, link in zendesk.jira_links.items()
    }
    linked = [t for t in company.tickets if not t.deleted and t.integration_links]
    for ticket in rng.sample(linked, 8):  # links removed
        issue_id, key = ticket.integration_links[0]
        ticket.integration_links.remove((issue_id, key))
        zendesk.remove_jira_link(by_pair[(ticket.id, issue_id)])
        done.counts["links deleted"] += 1
    unlinked = [t for t in company.tickets if not t.deleted and not t.integration_links]
    for ticket in rng.sample(unlinked, 8):  # links added
        issue = rng.choice(live_issues)
        ticket.integration_links.append((issue.id, issue.key))
        zendesk.add_jira_link(ticket.id, issue.id, issue.key)
        done.counts["links added"] += 1


def _issues(demo: Demo, rng: random.Random, done: Churn) -> None:
    jira = demo.simulators.jira
    company = demo.company
    truth = company.truth.demand()
    # (Issues that moved before are left alone: the model keeps one old key per issue.)
    asked = [i for i in company.issues if not i.deleted and not i.old_key and truth[i.id].tickets]
    for issue in rng.sample(asked, 4):  # moved: a new key, the old one keeps working
        target = rng.choice([p for p in ("CORE", "MOBILE", "DATA") if p != issue.project])
        new_key = jira.move_issue(issue.id, target)
        issue.old_key = issue.key  # the key tickets still name
        issue.key, issue.project = new_key, target
        done.counts["issues moved"] += 1
    remaining = [i for i in asked if not i.old_key]
    for issue in rng.sample(remaining, 2):
        issue.deleted = True
        jira.delete_issue(issue.id)
        done.counts["issues deleted"] += 1


def _organizations(demo: Demo, rng: random.Random, done: Churn) -> None:
    zendesk = demo.simulators.zendesk
    company = demo.company
    live = [a for a in company.accounts if not a.deleted]
    orgs = [o for o in company.organizations if o.external_id]
    for org in rng.sample(orgs, 4):  # pointed at another account
        account = rng.choice(live)
        org.external_id = account.id  # re-pointed (a CRM merge, a fixed mistake)
        stored = zendesk._public(zendesk.organizations[org.id])
        zendesk.put_organization({**stored, "external_id": account.id})
        done.counts["organization external ids changed"] += 1
