"""A generated company, spread consistently across Salesforce, Zendesk, Jira and Pendo.

One seeded model (`build_company`) holds every record the four simulators serve and the ground
truth a test needs to check pmsync without trusting pmsync: which account each ticket really
belongs to, whether the shipped link rules can find it unambiguously (and by which rule), which
issues each ticket asks for, and each account's ARR and currency. `Truth.demand` turns that into
the per-issue figures (distinct accounts, ARR in one currency, ticket counts) written back to Jira.

The data is messy on purpose, as real installations are: requesters on free mail, two accounts
sharing a web domain, tickets without an organization, organizations pointing at deleted or
15-character account ids, a ticket field naming an issue key that does not exist, issues moved
to another project after tickets named them (Jira links kept under the old key, tickets naming
the old key in their field or text), links to a deleted issue, duplicate contacts, accounts in
EUR and GBP, and a few accounts whose ARR field is empty.

`fill` puts the model into running simulators (fresh ones: record ids are predicted and checked).
Nothing here knows pmsync; the rules are re-implemented from their documented meaning.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pmsync.simulators.company_voices import NpsAnswer, Opportunity, generate_voices
from pmsync.simulators.jira.data import COMPONENTS, ISSUE_TYPES, PRIORITIES, VERSIONS
from pmsync.simulators.jira.data import STATUSES as JIRA_STATUSES
from pmsync.simulators.pendo.data import FEATURES
from pmsync.simulators.salesforce.model import salesforce_id
from pmsync.simulators.zendesk.data import (
    PRODUCT_TAGS,
)

DEFAULT_SEED = 2026
REPORTING_CURRENCY = "USD"
# Value of one unit of each currency in US dollars (the demo config declares the same rates).
RATES: Mapping[str, float] = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
PROJECTS = ("CORE", "MOBILE", "DATA")
SEGMENTS = ("Enterprise", "Mid-Market", "SMB")
# The ticket -> account rules of the shipped mappings/links.toml, in order (no overrides here).
ACCOUNT_RULES = (
    "organization_external_id",
    "organization_account_field",
    "contact_email",
    "email_domain",
)
ISSUE_RULES = ("jira_integration", "ticket_field")

# Jira fields the demo writes back to ("Customer ARR" and "Customer requests" are already in
# the simulator's catalogue of a fresh site).
CUSTOMER_ACCOUNTS_FIELD = "customfield_10103"
CUSTOMER_DEMAND_FIELD = "customfield_10104"
PIPELINE_FIELD = "customfield_10105"
DETRACTOR_ARR_FIELD = "customfield_10106"
RICE_FIELD = "customfield_10107"
PRIORITY_FIELD = "customfield_10108"
DEMO_JIRA_FIELDS = (
    (CUSTOMER_ACCOUNTS_FIELD, "Customer accounts", "number", "float"),
    (CUSTOMER_DEMAND_FIELD, "Customer demand", "string", "textfield"),
    (PIPELINE_FIELD, "Pipeline at stake", "number", "float"),
    (DETRACTOR_ARR_FIELD, "Detractor ARR", "number", "float"),
    (RICE_FIELD, "RICE score", "number", "float"),
    (PRIORITY_FIELD, "Priority score", "number", "float"),
)

# Record ids the simulators would assign; `fill` checks them.
ORG_ID_BASE = 360_000_000_000
USER_ID_BASE = 370_000_000_000
JIRA_FIRST_ISSUE_ID = 10_001

HOUR = 3600
DAY = 86_400

AccountStatus = Literal["linked", "ambiguous", "missing"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_PREFIXES = _words(
    "Acme Bluebay Northwind Contoso Fabrikam Tailspin Litware Proseware Adatum "
    "Woodgrove Lucerne Alpine Coho Wingtip Bluebird Silverline Redwood Ironbridge "
    "Copperleaf Brightpath Clearwater Summit Evergreen Harborview Keystone Lakeside Maple "
    "Oakridge Pinecrest Quarry Riverbend Stonegate Sunrise Timberline Westfield Willow "
    "Zenith Polaris Globex Initech Umbrella Hooli Vandelay Tyrell Soylent Aperture Nakatomi "
    "Monarch Wonka Cyberdyne"
)
_SUFFIXES = _words(
    "Analytics Logistics Health Labs Systems Foods Energy Capital Retail Media Robotics "
    "Insurance Travel Bank Telecom Pharma Motors Studios Learning Security"
)
_FIRST = _words(
    "Ann Ben Chloe Dev Eva Farid Grace Hugo Ines Jun Kai Lena Marco Nadia Omar Priya Quinn "
    "Rosa Sven Tara Uma Victor Wen Xavier Yara Zoe Amir Bea Carlos Dana"
)
_LAST = _words(
    "Smith Okafor Novak Garcia Chen Muller Rossi Tanaka Berg Silva Kowalski Dubois Nguyen "
    "Haddad Larsen Moreau Petrov Santos Schmidt Weber Ivanova Kim Lopez Brown Singh"
)
_INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Manufacturing", "Education")
_COUNTRIES = {"USD": ("US", "CA"), "EUR": ("DE", "FR", "NL", "ES"), "GBP": ("GB",)}
_REGIONS = ("AMER", "EMEA", "APAC")
_TITLES = ("CTO", "VP Product", "Engineer", "Support Lead", "Head of Operations", None)
_SUBSIDIARY = ("EMEA", "Holdings", "Canada")

# What customers ask for, per product area: issue summaries and ticket subjects.
_ASKS = {
    "billing": (
        "Invoices in the customer's currency",
        "Prorated refunds on seat downgrades",
        "Pricing page shows tax-inclusive prices",
        "Consolidated invoice for subsidiaries",
        "Purchase order number on invoices",
    ),
    "reporting": (
        "Export dashboards to CSV",
        "Scheduled report e-mails",
        "Filter reports by custom fields",
        "Dashboard load time above ten seconds",
        "Share dashboards with read-only links",
    ),
    "integrations": (
        "Webhook retries with back-off",
        "Salesforce sync of custom objects",
        "Slack notifications per project",
        "API rate limit headers",
        "Bulk import through the API",
    ),
    "mobile": (
        "Offline mode on iOS",
        "Android push notifications are delayed",
        "Mobile app crashes on login",
        "Dark mode in the mobile app",
        "Biometric unlock on mobile",
    ),
    "security": (
        "SAML single sign-on with Okta",
        "Enforce 2FA for all admins",
        "Granular permissions per workspace",
        "Audit log export",
        "SCIM user provisioning",
    ),
}
_QUALIFIERS = ("", "for large accounts", "in the EU region", "(regression)", "v2", "for admins")
_AREA_HOME = {
    "billing": ("CORE", "Backend"),
    "reporting": ("DATA", "Reporting"),
    "integrations": ("CORE", "Integrations"),
    "mobile": ("MOBILE", "Mobile"),
    "security": ("CORE", "Frontend"),
}
_WORDS = _words(
    "customer export dashboard invoice login error slow sync report chart filter permission "
    "mobile app crash webhook api timeout billing seat license admin user role integration "
    "calendar reminder notification email template import csv upload limit retry"
)
_PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Ken Thompson")


# ---- sizes and mess ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanySize:
    """How big the company is. Defaults: the demo's size."""

    accounts: int = 300
    contacts: int = 900
    users: int = 1200
    tickets: int = 3000
    issues: int = 250
    salespeople: int = 8
    usage_days: int = 35


@dataclass(frozen=True)
class Mess:
    """How messy the data is: counts of each trap, and shares."""

    shared_domains: int = 3  # pairs of accounts with one web domain (parent and subsidiary)
    deleted_accounts: int = 3  # accounts in the Recycle Bin, still named by Zendesk orgs
    dangling_keys: int = 4  # tickets whose issue-key field names an issue that does not exist
    moved_issues: int = 2  # issues moved project after tickets named them by their old key
    deleted_issue_links: int = 3  # tickets linked (by the integration) to a deleted issue
    duplicate_contacts: int = 1  # one e-mail that is a contact at both accounts of a pair
    free_mail_share: float = 0.08  # requesters writing from free mail
    non_customer_share: float = 0.03  # requesters who belong to no account at all
    no_org_share: float = 0.10  # requesters of an account who are in no organization
    deleted_ticket_share: float = 0.02
    link_share: float = 0.45  # tickets that ask for at least one issue
    customer_facing_share: float = 0.6  # issues that customers can ask for at all
    empty_arr_share: float = 0.03  # accounts whose ARR__c is empty (AnnualRevenue is read)


# ---- the model --------------------------------------------------------------------------------


@dataclass
class SalesUser:
    id: str
    name: str
    email: str
    region: str


@dataclass
class Account:
    id: str
    name: str
    domain: str
    website: str
    segment: str
    currency: str
    arr_field: float | None  # ARR__c
    annual_revenue: float
    owner_id: str
    industry: str
    employees: int
    country: str
    type: str
    deleted: bool = False

    @property
    def arr(self) -> float:
        """ARR as the shipped mapping reads it: ARR__c, else AnnualRevenue."""
        return self.arr_field if self.arr_field is not None else self.annual_revenue


@dataclass
class Contact:
    id: str
    account_id: str
    first: str
    last: str
    email: str  # as Salesforce stores it (case kept)
    title: str | None
    deleted: bool = False


@dataclass
class Organization:
    id: int
    account_id: str  # the account it really is
    name: str
    external_id: str | None
    salesforce_field: str | None  # organization_fields.salesforce_id
    domain: str
    segment: str


@dataclass
class Requester:
    """A Zendesk end user."""

    id: int
    name: str
    email: str
    organization_id: int | None
    account_id: str | None  # the account they really work for (None: not a customer)
    weight: float = 1.0


@dataclass
class Issue:
    id: str
    key: str
    project: str
    area: str
    summary: str
    status: str
    versions: list[str]
    components: list[str]
    labels: list[str]
    points: float | None
    priority: tuple[str, str]
    issue_type: tuple[str, str]
    assignee: str | None
    reporter: str
    created_age: int
    updated_age: int
    deleted: bool = False
    old_key: str | None = None  # the key it had before it moved (tickets still name it)


@dataclass
class Ticket:
    id: int
    requester_id: int
    organization_id: int | None
    area: str
    tags: list[str]
    subject: str
    description: str
    status: str
    priority: str | None
    type: str
    channel: str
    created_age: int
    updated_age: int
    field_text: str | None = None  # the "Jira issue key" ticket field
    integration_links: list[tuple[str, str]] = field(default_factory=list)  # (issue id, key)
    deleted: bool = False


@dataclass
class DailyUsage:
    account_id: str
    days_ago: int  # 1 = yesterday
    visitors: int
    events: int
    minutes: int
    features: dict[str, int] = field(default_factory=dict)  # feature id -> events


# ---- ground truth -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketTruth:
    """What a ticket is and what the declared rules can find for it."""

    ticket_id: int
    deleted: bool
    true_account: str | None  # who really filed it (None: not a customer)
    account: str | None  # what the shipped rules find unambiguously (None: nothing)
    rule: str | None  # the rule that finds it
    status: AccountStatus
    candidates: tuple[str, ...]  # accounts an ambiguous rule found
    issue_ids: tuple[str, ...]  # live issues it asks for
    issue_rules: Mapping[str, str]  # issue id -> first rule that links it
    dangling: tuple[str, ...]  # keys it names that match no live issue


@dataclass(frozen=True)
class AccountTruth:
    id: str
    name: str
    arr: float  # in the account's currency
    currency: str
    segment: str
    deleted: bool


@dataclass(frozen=True)
class IssueTruth:
    id: str
    key: str
    project: str
    deleted: bool
    old_key: str | None


@dataclass(frozen=True)
class IssueDemand:
    """The expected customer-demand figures of one issue."""

    issue_id: str
    key: str
    accounts: frozenset[str]
    arr: float  # in the reporting currency, rounded to cents
    tickets: int
    unlinked_tickets: int


@dataclass
class Truth:
    tickets: dict[int, TicketTruth]
    accounts: dict[str, AccountTruth]
    issues: dict[str, IssueTruth]

    def demand(
        self, rates: Mapping[str, float] = RATES, reporting: str = REPORTING_CURRENCY
    ) -> dict[str, IssueDemand]:
        """Per live issue: distinct accounts asking, their ARR in `reporting`, ticket counts.

        `rates` give the value of one unit of each currency in `reporting` units. Deleted tickets
        and accounts drop out; an account counts once however many tickets it filed; a ticket
        whose account the rules cannot find counts as a ticket, not as an account.
        """
        asking: dict[str, list[TicketTruth]] = defaultdict(list)
        for ticket in self.tickets.values():
            if not ticket.deleted:
                for issue_id in ticket.issue_ids:
                    asking[issue_id].append(ticket)
        result = {}
        for issue in self.issues.values():
            if issue.deleted:
                continue
            tickets = asking.get(issue.id, [])
            accounts = frozenset(t.account for t in tickets if t.account is not None)
            total = sum(self._converted(a, rates, reporting) for a in sorted(accounts))
            result[issue.id] = IssueDemand(
                issue_id=issue.id,
                key=issue.key,
                accounts=accounts,
                arr=round(total, 2),
                tickets=len(tickets),
                unlinked_tickets=sum(1 for t in tickets if t.account is None),
            )
        return result

    def _converted(self, account_id: str, rates: Mapping[str, float], reporting: str) -> float:
        account = self.accounts[account_id]
        if account.currency == reporting:
            return account.arr
        return account.arr * rates[account.currency]


# ---- the company ------------------------------------------------------------------------------


@dataclass
class Company:
    """Every record of the generated company, and its ground truth."""

    seed: int
    size: CompanySize
    mess: Mess
    sales_users: list[SalesUser] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    organizations: list[Organization] = field(default_factory=list)
    requesters: list[Requester] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    usage: list[DailyUsage] = field(default_factory=list)
    opportunities: list[Opportunity] = field(default_factory=list)
    nps: list[NpsAnswer] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)  # (issue id, to project), in order
    truth: Truth = field(default_factory=lambda: Truth({}, {}, {}))

    def live_accounts(self) -> list[Account]:
        return [a for a in self.accounts if not a.deleted]

    def expected_counts(self, usage_window: int | None = None) -> dict[tuple[str, str], int]:
        """Live records each stream of the shipped mappings should land, by (connector, stream).

        `usage_window`: days of Pendo usage read (ending yesterday); None leaves usage out.
        """
        counts = {
            ("salesforce", "Account"): len(self.live_accounts()),
            ("salesforce", "Contact"): sum(1 for c in self.contacts if not c.deleted),
            ("salesforce", "CurrencyType"): len(RATES),
            ("zendesk", "organizations"): len(self.organizations),
            ("zendesk", "users"): len(self.requesters),
            ("zendesk", "tickets"): sum(1 for t in self.tickets if not t.deleted),
            ("zendesk", "jira_links"): sum(len(t.integration_links) for t in self.tickets),
            ("jira", "issues"): sum(1 for i in self.issues if not i.deleted),
            ("pendo", "accounts"): len({u.account_id for u in self.usage}),
            ("salesforce", "Opportunity"): sum(1 for o in self.opportunities if not o.deleted),
            ("salesforce", "Opportunity_Issue__c"): sum(
                len(o.junction_keys) for o in self.opportunities if not o.deleted
            ),
        }
        if usage_window is not None:
            counts[("pendo", "usage")] = len(
                {(u.account_id, u.days_ago) for u in self.usage if u.days_ago <= usage_window}
            )
            counts[("pendo", "nps_responses")] = sum(
                1
                for a in self.nps
                if a.poll == "rating"
                and not a.visitor_id.startswith("_PENDO_T_")
                and a.days_ago <= usage_window
            )
        return counts


def build_company(
    seed: int = DEFAULT_SEED, size: CompanySize | None = None, mess: Mess | None = None
) -> Company:
    """The whole company for a seed: records for every simulator plus the ground truth."""
    size = size or CompanySize()
    mess = mess or Mess()
    if size.accounts < 2 * mess.shared_domains + mess.deleted_accounts + 2:
        raise ValueError("too few accounts for the requested mess")
    rng = random.Random(seed)
    company = Company(seed=seed, size=size, mess=mess)
    _sales_users(company, rng)
    _accounts(company, rng)
    _contacts(company, rng)
    _organizations(company, rng)
    _requesters(company, rng)
    weights = _issues(company, rng)
    _tickets(company, rng, weights)
    _usage(company, rng)
    generate_voices(company, seed)
    company.truth = compute_truth(company)
    return company


# ---- Salesforce -------------------------------------------------------------------------------


def _sales_users(company: Company, rng: random.Random) -> None:
    for n in range(1, company.size.salespeople + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company.sales_users.append(
            SalesUser(
                id=salesforce_id("005", n),
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}{n}@vendor.example",
                region=_REGIONS[(n - 1) % len(_REGIONS)],
            )
        )


def _company_names(rng: random.Random, count: int) -> list[str]:
    pairs = len(_PREFIXES) * len(_SUFFIXES)
    picks = rng.sample(range(pairs), min(count, pairs))
    names = [f"{_PREFIXES[p // len(_SUFFIXES)]} {_SUFFIXES[p % len(_SUFFIXES)]}" for p in picks]
    names += [f"{names[n % pairs]} {n // pairs + 1}" for n in range(pairs, count)]
    return names


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _arr(rng: random.Random, segment: str) -> float:
    low, high = {"Enterprise": (250_000, 2_500_000), "Mid-Market": (40_000, 250_000)}.get(
        segment, (5_000, 40_000)
    )
    value = low * (high / low) ** rng.random()  # log-uniform: many small, a few large
    return float(round(value / 500) * 500)


def _website(rng: random.Random, domain: str) -> str:
    return rng.choice((f"https://www.{domain}", f"http://{domain}/", domain, f"https://{domain}/"))


def _accounts(company: Company, rng: random.Random) -> None:
    size, mess = company.size, company.mess
    for n, name in enumerate(_company_names(rng, size.accounts), start=1):
        segment = rng.choices(SEGMENTS, weights=(15, 35, 50))[0]
        currency = rng.choices(("USD", "EUR", "GBP"), weights=(70, 20, 10))[0]
        arr = _arr(rng, segment)
        empty_arr = rng.random() < mess.empty_arr_share
        domain = f"{_slug(name)}.example"
        company.accounts.append(
            Account(
                id=salesforce_id("001", n),
                name=name,
                domain=domain,
                website=_website(rng, domain),
                segment=segment,
                currency=currency,
                arr_field=None if empty_arr else arr,
                # Older accounts had their ARR entered as Annual Revenue; the mapping falls back.
                annual_revenue=arr if empty_arr else float(round(arr * rng.uniform(8, 60), -3)),
                owner_id=rng.choice(company.sales_users).id,
                industry=rng.choice(_INDUSTRIES),
                employees=rng.randrange(10, 20_000),
                country=rng.choice(_COUNTRIES[currency]),
                type=rng.choices(("Customer - Direct", "Customer - Channel"), weights=(4, 1))[0],
            )
        )
    picked = rng.sample(range(size.accounts), 2 * mess.shared_domains + mess.deleted_accounts)
    for pair in range(mess.shared_domains):
        parent = company.accounts[picked[2 * pair]]
        child = company.accounts[picked[2 * pair + 1]]
        child.name = f"{parent.name} {_SUBSIDIARY[pair % len(_SUBSIDIARY)]}"
        child.domain = parent.domain
        child.website = _website(rng, parent.domain)
        parent.segment = "Enterprise"
        child.segment = "Mid-Market"
    for index in picked[2 * mess.shared_domains :]:
        company.accounts[index].deleted = True


def shared_domain_pairs(company: Company) -> list[tuple[Account, Account]]:
    """(parent, subsidiary) pairs that share a web domain; the parent comes first in Id order."""
    by_domain: dict[str, list[Account]] = defaultdict(list)
    for account in company.accounts:
        by_domain[account.domain].append(account)
    pairs = []
    for accounts in by_domain.values():
        if len(accounts) == 2:
            first, second = accounts
            child = second if second.name.startswith(first.name) else first
            parent = first if child is second else second
            pairs.append((parent, child))
    return pairs


def _segment_weight(account: Account) -> float:
    return {"Enterprise": 6.0, "Mid-Market": 3.0}.get(account.segment, 1.5)


def _person(rng: random.Random, n: int) -> tuple[str, str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return first, last, f"{first.lower()}.{last.lower()}{n}"


def _contacts(company: Company, rng: random.Random) -> None:
    accounts = company.accounts
    weights = list(itertools.accumulate(_segment_weight(a) for a in accounts))
    chosen = [rng.choices(accounts, cum_weights=weights)[0] for _ in range(company.size.contacts)]
    for n, account in enumerate(chosen, start=1):
        first, last, handle = _person(rng, n)
        domain = rng.choice(FREE_MAIL) if rng.random() < 0.05 else account.domain
        email = f"{handle}@{domain}"
        if rng.random() < 0.2:
            email = f"{first}.{last}{n}@{domain.capitalize()}"  # as typed into the CRM
        company.contacts.append(
            Contact(
                id=salesforce_id("003", n),
                account_id=account.id,
                first=first,
                last=last,
                email=email,
                title=rng.choice(_TITLES),
                deleted=account.deleted,  # deleting an account deletes its contacts
            )
        )
    _duplicate_contacts(company, rng)


def _duplicate_contacts(company: Company, rng: random.Random) -> None:
    """A person listed as a contact at both the parent and the subsidiary."""
    pairs = shared_domain_pairs(company)
    for index in range(min(company.mess.duplicate_contacts, len(pairs))):
        parent, child = pairs[index]
        number = len(company.contacts) + 1
        first, last, handle = _person(rng, number)
        for offset, account in enumerate((parent, child)):
            company.contacts.append(
                Contact(
                    id=salesforce_id("003", number + offset),
                    account_id=account.id,
                    first=first,
                    last=last,
                    email=f"{handle}@{parent.domain}",
                    title="Head of Operations",
                )
            )


# ---- Zendesk ----------------------------------------------------------------------------------


def _organizations(company: Company, rng: random.Random) -> None:
    subsidiaries = {child.id for _, child in shared_domain_pairs(company)}
    for account in company.accounts:
        if account.id in subsidiaries or (not account.deleted and rng.random() < 0.12):
            continue  # no organization in Zendesk for this customer
        style = rng.choices(("external", "external15", "field", "none"), weights=(75, 10, 7, 8))[0]
        if account.deleted:
            style = "external"  # the CRM sync set it before the account was deleted
        number = len(company.organizations) + 1
        company.organizations.append(
            Organization(
                id=ORG_ID_BASE + number,
                account_id=account.id,
                name=account.name if rng.random() < 0.8 else f"{account.name} Inc.",
                external_id={"external": account.id, "external15": account.id[:15]}.get(style),
                salesforce_field=account.id if style in ("external", "field") else None,
                domain=account.domain,
                segment=account.segment.lower(),
            )
        )


def _requesters(company: Company, rng: random.Random) -> None:
    mess = company.mess
    org_of = {o.account_id: o.id for o in company.organizations}
    contacts: dict[str, list[Contact]] = defaultdict(list)
    for contact in company.contacts:
        contacts[contact.account_id].append(contact)
    for pool in contacts.values():
        rng.shuffle(pool)
    accounts = company.accounts
    weights = list(itertools.accumulate(_segment_weight(a) for a in accounts))
    used: set[str] = set()  # Zendesk e-mails are unique; a duplicate contact is used once
    for n in range(1, company.size.users + 1):
        user_id = USER_ID_BASE + n
        if rng.random() < mess.non_customer_share:
            first, last, handle = _person(rng, 1_000_000 + n)
            email = f"{handle}@{rng.choice(FREE_MAIL)}"
            # Prospects and ex-customers writing from home: no account, ever.
            stranger = Requester(user_id, f"{first} {last}", email, None, None, weight=2.0)
            company.requesters.append(stranger)
            continue
        account = rng.choices(accounts, cum_weights=weights)[0]
        pool = [c for c in contacts.get(account.id, []) if c.email.lower() not in used]
        if pool and rng.random() < 0.4:
            contact = pool[-1]
            contacts[account.id].remove(contact)
            name, email = f"{contact.first} {contact.last}", contact.email.lower()
            used.add(email)
        else:
            first, last, handle = _person(rng, 1_000_000 + n)
            free = rng.random() < mess.free_mail_share
            name, email = (
                f"{first} {last}",
                f"{handle}@{rng.choice(FREE_MAIL) if free else account.domain}",
            )
        org = org_of.get(account.id) if rng.random() >= mess.no_org_share else None
        company.requesters.append(
            Requester(
                user_id,
                name,
                email,
                org,
                account.id,
                weight=_segment_weight(account) * rng.lognormvariate(0, 0.8),
            )
        )


# ---- Jira -------------------------------------------------------------------------------------


def _issues(company: Company, rng: random.Random) -> dict[str, float]:
    """Create the issues; return the demand weight of each customer-facing live issue id."""
    counters = dict.fromkeys(PROJECTS, 0)

    def create(project: str, area: str, *, age_days: float = 180) -> Issue:
        counters[project] += 1
        issue = _issue(rng, project, area, counters[project], age_days)
        issue.id = str(JIRA_FIRST_ISSUE_ID + len(company.issues))
        company.issues.append(issue)
        return issue

    for _ in range(company.size.issues):
        area = rng.choice(list(_ASKS))
        home, _component = _AREA_HOME[area]
        project = home if rng.random() < 0.75 else rng.choice(PROJECTS)
        create(project, area)
    live = list(company.issues)
    facing = [i for i in live if rng.random() < company.mess.customer_facing_share] or live[:1]
    rng.shuffle(facing)
    weights = {issue.id: 1.0 / (rank + 1) ** 0.75 for rank, issue in enumerate(facing)}
    for issue in facing[:8]:
        if "customer-request" not in issue.labels:
            issue.labels = sorted([*issue.labels, "customer-request"])
    # Issues that moved to CORE after tickets named them: Jira gives them the next CORE key and
    # keeps the old one working; Zendesk links stay keyed on the id (under the old key).
    movers = [i for i in facing[2:] if i.project != "CORE"][: company.mess.moved_issues]
    for issue in movers:
        counters["CORE"] += 1
        issue.old_key = issue.key
        issue.key = f"CORE-{counters['CORE']}"
        issue.project = "CORE"
        company.moves.append((issue.id, "CORE"))
    # An issue deleted in Jira that Zendesk tickets still link to.
    if company.mess.deleted_issue_links:
        create("DATA", "reporting").deleted = True
    return weights


def _issue(rng: random.Random, project: str, area: str, number: int, age_days: float) -> Issue:
    state = rng.choices(list(JIRA_STATUSES), weights=[4, 2, 1, 3])[0]
    done = JIRA_STATUSES[state][1] == "done"
    released = [name for name, is_released in VERSIONS if is_released]
    upcoming = [name for name, is_released in VERSIONS if not is_released]
    versions = (
        rng.sample(released, k=rng.choice((0, 1, 1)))
        if done
        else rng.sample(upcoming, k=rng.choice((0, 0, 1)))
    )
    _home, component = _AREA_HOME[area]
    components = sorted({component, *rng.sample(COMPONENTS, k=rng.choice((0, 0, 1)))})
    summary = f"{rng.choice(_ASKS[area])} {rng.choice(_QUALIFIERS)}".strip()
    created = int(rng.uniform(1, age_days) * DAY)
    labels = sorted(
        {area, *rng.sample(("ux", "performance", "tech-debt", "api"), k=rng.randint(0, 2))}
    )
    return Issue(
        id="",
        key=f"{project}-{number}",
        project=project,
        area=area,
        summary=summary,
        status=state,
        versions=versions,
        components=components,
        labels=labels,
        points=rng.choice((None, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0)),
        priority=rng.choice(PRIORITIES),
        issue_type=rng.choice(ISSUE_TYPES),
        assignee=rng.choice(_PEOPLE) if rng.random() < 0.8 else None,
        reporter=rng.choice(_PEOPLE),
        created_age=created,
        updated_age=int(rng.uniform(15 * 60, max(created, 15 * 60 + 1))),
    )


# ---- tickets ----------------------------------------------------------------------------------


def _tickets(company: Company, rng: random.Random, weights: dict[str, float]) -> None:
    mess = company.mess
    by_id = {i.id: i for i in company.issues}
    # Cumulative weights, summed once: `choices` would sum the weights again on every call,
    # which made a company of a million tickets take hours (the same draws either way).
    facing = list(weights)
    issue_weights = list(itertools.accumulate(weights.values()))
    requesters = company.requesters
    requester_weights = list(itertools.accumulate(r.weight for r in requesters))
    for n in range(1, company.size.tickets + 1):
        requester = rng.choices(requesters, cum_weights=requester_weights)[0]
        asked: list[Issue] = []
        if rng.random() < mess.link_share:
            count = 2 if rng.random() < 0.1 else 1
            for issue_id in rng.choices(facing, cum_weights=issue_weights, k=count):
                if by_id[issue_id] not in asked:
                    asked.append(by_id[issue_id])
        ticket = _ticket(rng, n, requester, asked[0].area if asked else None)
        _link(rng, ticket, asked)
        ticket.deleted = rng.random() < mess.deleted_ticket_share
        company.tickets.append(ticket)
    _dangling_links(company, rng)


def _ticket(rng: random.Random, number: int, requester: Requester, area: str | None) -> Ticket:
    area = area or rng.choice(list(PRODUCT_TAGS))
    tags = rng.sample(PRODUCT_TAGS[area], k=rng.randint(1, 2))
    if rng.random() < 0.2:
        tags.append(rng.choice(("vip", "renewal", "escalated")))
    created = rng.randint(3 * HOUR, 360 * DAY)
    subject = rng.choice(_ASKS[area])
    words = " ".join(rng.choices(_WORDS, k=rng.randint(40, 120)))
    return Ticket(
        id=number,
        requester_id=requester.id,
        # Agents sometimes clear a ticket's organization; the requester's still applies.
        organization_id=requester.organization_id if rng.random() > 0.05 else None,
        area=area,
        tags=tags,
        subject=rng.choice((subject, f"Re: {subject}", f"Question: {subject.lower()}")),
        description=f"{subject}. {words.capitalize()}.",
        status=rng.choices(
            ("new", "open", "pending", "hold", "solved", "closed"), weights=(1, 3, 2, 1, 3, 3)
        )[0],
        priority=rng.choice(("low", "normal", "normal", "high", "urgent", None)),
        type=rng.choice(("question", "incident", "problem", "task")),
        channel=rng.choice(("email", "web", "api")),
        created_age=created,
        updated_age=rng.randint(2 * HOUR + 60, created),
    )


def _link(rng: random.Random, ticket: Ticket, asked: Sequence[Issue]) -> None:
    """Link a ticket to issues: by Zendesk's Jira integration, by the key field, or both.

    A moved issue was asked for before it moved: its links and the key field hold its old key,
    and some tickets name that key in their text too.
    """
    keys: list[str] = []
    for issue in asked:
        how = rng.random()
        named = issue.old_key or issue.key
        if how < 0.55 or how >= 0.9:
            ticket.integration_links.append((issue.id, named))
        if how >= 0.55:
            keys.append(named.lower() if rng.random() < 0.1 else named)
        if issue.old_key and rng.random() < 0.5:
            ticket.description += f" See [{issue.old_key}]."
    if keys:
        ticket.field_text = rng.choice((",", ", ")).join(keys)


def _dangling_links(company: Company, rng: random.Random) -> None:
    """Key fields naming issues that never existed; integration links to a deleted issue."""
    top = max((int(i.key.split("-")[1]) for i in company.issues if i.project == "CORE"), default=0)
    live = [t for t in company.tickets if not t.deleted]
    for offset, ticket in enumerate(rng.sample(live, min(len(live), company.mess.dangling_keys))):
        ghost = f"CORE-{top + 500 + offset}"
        ticket.field_text = f"{ticket.field_text},{ghost}" if ticket.field_text else ghost
    gone = [i for i in company.issues if i.deleted and i.old_key is None and i.project == "DATA"]
    if gone:
        for ticket in rng.sample(live, min(len(live), company.mess.deleted_issue_links)):
            ticket.integration_links.append((gone[0].id, gone[0].key))


# ---- Pendo ------------------------------------------------------------------------------------


def _usage(company: Company, rng: random.Random) -> None:
    feature_ids = [feature_id for feature_id, _name in FEATURES]
    for account in company.live_accounts():
        if rng.random() >= 0.7:
            continue
        seats = {"Enterprise": 40, "Mid-Market": 12}.get(account.segment, 4)
        for days_ago in range(1, company.size.usage_days + 1):
            if rng.random() < 0.25:
                continue  # a quiet day
            visitors = rng.randint(1, seats)
            company.usage.append(
                DailyUsage(
                    account_id=account.id,
                    days_ago=days_ago,
                    visitors=visitors,
                    events=visitors * rng.randint(5, 60),
                    minutes=visitors * rng.randint(2, 40),
                    features={f: rng.randint(1, 20) for f in feature_ids if rng.random() < 0.4},
                )
            )


# ---- ground truth ------------------------------------------------------------------------------


def compute_truth(company: Company) -> Truth:
    """Apply the shipped rules' documented meaning to the model (not pmsync's code)."""
    resolver = _AccountResolver(company)
    live_ids = {i.id: i for i in company.issues if not i.deleted}
    live_keys = {i.key: i for i in company.issues if not i.deleted}
    # Jira keeps a moved issue's old key working: a ticket naming it asks for the issue.
    live_keys.update({i.old_key: i for i in company.issues if not i.deleted and i.old_key})
    requesters = {r.id: r for r in company.requesters}
    tickets = {}
    for ticket in company.tickets:
        requester = requesters[ticket.requester_id]
        account, rule, status, candidates = resolver.resolve(ticket, requester)
        issue_rules, dangling = _issue_links(ticket, live_ids, live_keys)
        tickets[ticket.id] = TicketTruth(
            ticket_id=ticket.id,
            deleted=ticket.deleted,
            true_account=requester.account_id,
            account=account,
            rule=rule,
            status=status,
            candidates=candidates,
            issue_ids=tuple(sorted(issue_rules)),
            issue_rules=issue_rules,
            dangling=dangling,
        )
    accounts = {
        a.id: AccountTruth(a.id, a.name, a.arr, a.currency, a.segment, a.deleted)
        for a in company.accounts
    }
    issues = {
        i.id: IssueTruth(i.id, i.key, i.project, i.deleted, i.old_key) for i in company.issues
    }
    return Truth(tickets, accounts, issues)


def _issue_links(
    ticket: Ticket, live_ids: Mapping[str, Issue], live_keys: Mapping[str, Issue]
) -> tuple[dict[str, str], tuple[str, ...]]:
    found: dict[str, str] = {}
    dangling: set[str] = set()
    for issue_id, key in ticket.integration_links:
        issue = live_ids.get(issue_id) or live_keys.get(key.upper())
        if issue is None:
            dangling.add(key)
        else:
            found.setdefault(issue.id, "jira_integration")
    for key in (k.strip().upper() for k in (ticket.field_text or "").split(",")):
        if not key:
            continue
        issue = live_keys.get(key)
        if issue is None:
            dangling.add(key)
        else:
            found.setdefault(issue.id, "ticket_field")
    return found, tuple(sorted(dangling))


class _AccountResolver:
    """The ticket -> account rules of mappings/links.toml over the model's live records."""

    def __init__(self, company: Company) -> None:
        live = {a.id: a for a in company.live_accounts()}
        self.by_id = {**{i[:15]: a for i, a in live.items()}, **live}
        self.orgs = {o.id: o for o in company.organizations}
        self.by_email: dict[str, set[str]] = defaultdict(set)
        for contact in company.contacts:
            if not contact.deleted and contact.account_id in live:
                self.by_email[contact.email.lower()].add(contact.account_id)
        self.by_domain: dict[str, set[str]] = defaultdict(set)
        for account in live.values():
            self.by_domain[account.domain].add(account.id)

    def resolve(
        self, ticket: Ticket, requester: Requester
    ) -> tuple[str | None, str | None, AccountStatus, tuple[str, ...]]:
        org = self.orgs.get(ticket.organization_id or requester.organization_id or 0)
        email = requester.email.lower()
        for rule in ACCOUNT_RULES:
            found = self._candidates(rule, org, email)
            if len(found) == 1:
                return next(iter(found)), rule, "linked", ()
            if len(found) > 1:
                return None, None, "ambiguous", tuple(sorted(found))
        return None, None, "missing", ()

    def _candidates(self, rule: str, org: Organization | None, email: str) -> set[str]:
        if rule in ("organization_external_id", "organization_account_field"):
            if org is None:
                return set()
            value = org.external_id if rule == "organization_external_id" else org.salesforce_field
            account = self.by_id.get(value or "") or self.by_id.get((value or "")[:15])
            return {account.id} if account else set()
        if rule == "contact_email":
            return set(self.by_email.get(email, ()))
        domain = email.rsplit("@", 1)[-1]
        return set() if domain in FREE_MAIL else set(self.by_domain.get(domain, ()))


def describe(company: Company) -> dict[str, Any]:
    """Counts of what was generated and of each trap, for humans and reports."""
    truth = company.truth
    live = [t for t in truth.tickets.values() if not t.deleted]
    by_status: dict[str, int] = defaultdict(int)
    by_rule: dict[str, int] = defaultdict(int)
    for ticket in live:
        by_status[ticket.status] += 1
        by_rule[ticket.rule or "-"] += 1
    return {
        "accounts": len(company.live_accounts()),
        "deleted_accounts": sum(1 for a in company.accounts if a.deleted),
        "contacts": sum(1 for c in company.contacts if not c.deleted),
        "organizations": len(company.organizations),
        "users": len(company.requesters),
        "tickets": len(live),
        "deleted_tickets": len(truth.tickets) - len(live),
        "issues": sum(1 for i in company.issues if not i.deleted),
        "linked_tickets": sum(1 for t in live if t.issue_ids),
        "account_status": dict(by_status),
        "account_rule": dict(by_rule),
        "currencies": _count(a.currency for a in company.live_accounts()),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return dict(counts)
