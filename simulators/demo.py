"""Launch the demo world: simulators in this process, filled with the generated company, and a
ready-to-run pmsync configuration next to a SQLite store.

`launch(directory)` starts the Salesforce, Zendesk, Jira (and Pendo) simulators on free ports
(threads of this process), fills them from `simulators.company`, and writes into `directory`:
  * pmsync.toml: the four connectors pointed at the simulators; credentials are `{ env = ... }`
    references whose values `Demo.env` holds (also written to demo.env as VAR=value lines);
  * mappings/: a copy of the shipped mappings plus the demo's write-back declarations
    (simulators/demo_mappings), so the demo can be edited like a real installation (a user's
    edits survive a relaunch; `reset_mappings` restores the shipped files);
  * the store, pmsync-demo.db (removed at each launch: the simulators start afresh).
The simulators live as long as the `Demo` object; `Demo.stop()` (or leaving its `with` block)
ends them. `Demo.change(...)` changes their world while they run (simulators/demo_changes.py).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pmsync.simulators.base import Simulator
from pmsync.simulators.company import (
    DAY,
    DEFAULT_SEED,
    DEMO_JIRA_FIELDS,
    PROJECTS,
    RATES,
    REPORTING_CURRENCY,
    Account,
    Company,
    CompanySize,
    DailyUsage,
    Issue,
    Mess,
    Organization,
    Requester,
    Ticket,
    build_company,
)
from pmsync.simulators.company_voices import NpsAnswer, Opportunity
from pmsync.simulators.jira.app import JiraSimulator
from pmsync.simulators.jira.data import COMPONENTS, VERSIONS
from pmsync.simulators.jira.data import STATUSES as JIRA_STATUSES
from pmsync.simulators.jira.data import status as jira_status
from pmsync.simulators.jira.fields import STORY_POINTS, custom_field
from pmsync.simulators.pendo.app import PendoSimulator
from pmsync.simulators.pendo.data import (
    FEATURES,
    FEEDBACK_GUIDE_ID,
    FEEDBACK_POLL,
    GUIDES,
    NPS_GUIDE_ID,
    NPS_RATING_POLL,
    NPS_REASON_POLL,
)
from pmsync.simulators.salesforce.app import SalesforceSimulator
from pmsync.simulators.salesforce.data import (
    install_currencies,
    install_schema,
    opportunity_values,
)
from pmsync.simulators.zendesk.app import ZendeskSimulator, iso_timestamp
from pmsync.simulators.zendesk.data import (
    JIRA_KEY_FIELD,
    PRODUCT_AREA_FIELD,
    SALESFORCE_ID_ORG_FIELD,
    SEATS_FIELD,
    SEGMENT_ORG_FIELD,
    organization_fields,
    ticket_fields,
    user_fields,
)

CONFIG_NAME = "pmsync.toml"
ENV_NAME = "demo.env"
STORE_NAME = "pmsync-demo.db"
MAPPINGS_NAME = "mappings"
USAGE_DAYS = 30  # Pendo usage the demo reads (the rollup's usage window)
MY_DOMAIN = "demo.my.salesforce.com"
ENV_SALESFORCE = "PMSYNC_DEMO_SALESFORCE_CLIENT_SECRET"
ENV_ZENDESK = "PMSYNC_DEMO_ZENDESK_API_TOKEN"
ENV_JIRA = "PMSYNC_DEMO_JIRA_API_TOKEN"
ENV_PENDO = "PMSYNC_DEMO_PENDO_INTEGRATION_KEY"
POLL_INTERVAL = "30s"  # `pmsync run` on the demo notices a world change within half a minute


# ---- where things are -------------------------------------------------------------------------


def shipped_mappings_dir() -> Path:
    """The shipped mappings/: the repository root in a checkout or editable install, beside the
    packages in site-packages for a wheel install (pyproject ships it there)."""
    path = Path(__file__).resolve().parent.parent / MAPPINGS_NAME
    if not (path / "links.toml").is_file():
        raise FileNotFoundError(f"the shipped mappings are not at {path}; reinstall pmsync")
    return path


def demo_mappings_dir() -> Path:
    """The demo's own mapping files (write-back declarations)."""
    return Path(__file__).resolve().parent / "demo_mappings"


# ---- simulators -------------------------------------------------------------------------------


@dataclass
class Simulators:
    """The running simulators of one demo."""

    salesforce: SalesforceSimulator
    zendesk: ZendeskSimulator
    jira: JiraSimulator
    pendo: PendoSimulator | None = None

    def all(self) -> list[Simulator]:
        running: list[Simulator] = [self.salesforce, self.zendesk, self.jira]
        return [*running, self.pendo] if self.pendo is not None else running

    def stop(self) -> None:
        for sim in self.all():
            sim.stop()


def start_simulators(*, pendo: bool = True, host: str = "127.0.0.1") -> Simulators:
    """Start fresh simulators on free ports. Rate limits are generous (a demo, not a soak test)
    but still enforced, so the connectors pace themselves as in production."""
    sims = Simulators(
        salesforce=SalesforceSimulator(),
        zendesk=ZendeskSimulator(incremental_per_minute=100, plan_per_minute=2000),
        jira=JiraSimulator(),
        pendo=PendoSimulator() if pendo else None,
    )
    try:
        for sim in sims.all():
            sim.start(host=host)
    except OSError:
        sims.stop()
        raise
    return sims


# ---- the demo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What one change to the demo's world did, in a sentence, and the issues it moves."""

    summary: str
    issue_keys: tuple[str, ...]


def world_changes() -> dict[str, str]:
    """The changes `Demo.change` makes, by name, with what each does."""
    from pmsync.simulators.demo_changes import CHANGES

    return {name: what for name, (what, _change) in CHANGES.items()}


@dataclass
class Demo:
    """A launched demo: the company, its running simulators and the files written for pmsync."""

    directory: Path
    company: Company
    simulators: Simulators
    env: dict[str, str] = field(default_factory=dict)
    turns: Counter[str] = field(default_factory=Counter)  # world changes made, by kind

    @property
    def config_path(self) -> Path:
        return self.directory / CONFIG_NAME

    @property
    def env_path(self) -> Path:
        return self.directory / ENV_NAME

    @property
    def store_path(self) -> Path:
        return self.directory / STORE_NAME

    @property
    def mappings_dir(self) -> Path:
        return self.directory / MAPPINGS_NAME

    def export_env(self) -> None:
        """Put the simulators' credentials into this process's environment (the config's
        `{ env = ... }` references read them when the config is loaded)."""
        os.environ.update(self.env)

    def expected_counts(self) -> dict[tuple[str, str], int]:
        """Live records per (connector, stream) a full sync lands."""
        counts = self.company.expected_counts(USAGE_DAYS)
        if self.simulators.pendo is None:
            counts = {k: v for k, v in counts.items() if k[0] != "pendo"}
        return counts

    def change(self, kind: str) -> Change:
        """Change the world: one of `world_changes()` (simulators/demo_changes.py)."""
        from pmsync.simulators.demo_changes import CHANGES

        return CHANGES[kind][1](self)

    def stop(self) -> None:
        self.simulators.stop()

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(
    directory: Path | str,
    *,
    seed: int = DEFAULT_SEED,
    size: CompanySize | None = None,
    mess: Mess | None = None,
    pendo: bool = True,
    reset_mappings: bool = False,
) -> Demo:
    """Generate the company, start and fill the simulators, write config, env and mappings.

    The previous demo store in `directory` is removed; mapping files already there are kept
    (a user's edits survive) unless `reset_mappings`.
    """
    company = build_company(seed, size, mess)
    sims = start_simulators(pendo=pendo)
    try:
        fill(
            company,
            salesforce=sims.salesforce,
            zendesk=sims.zendesk,
            jira=sims.jira,
            pendo=sims.pendo,
        )
        demo = Demo(Path(directory).resolve(), company, sims, env=credentials(sims))
        write_files(demo, reset_mappings=reset_mappings)
    except BaseException:
        sims.stop()
        raise
    return demo


SECRETS_DIR = "secrets"


def secret_file(env_name: str) -> str:
    """Where the demo keeps one credential, relative to its pmsync.toml."""
    return f"{SECRETS_DIR}/{env_name.lower()}"


def credentials(sims: Simulators) -> dict[str, str]:
    """Environment variables holding the simulators' secrets."""
    env = {
        ENV_SALESFORCE: sims.salesforce.client_secret,
        ENV_ZENDESK: sims.zendesk.token,
        ENV_JIRA: sims.jira.api_token,
    }
    if sims.pendo is not None:
        env[ENV_PENDO] = sims.pendo.integration_key
    return env


def write_files(demo: Demo, *, reset_mappings: bool = False) -> None:
    """pmsync.toml, demo.env, mappings/; and no store left from an earlier demo.

    A directory the demo creates is 0700 whatever the umask: the store it will hold is the
    generated company's customer data (an existing directory keeps its mode).
    """
    if not demo.directory.exists():
        demo.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        demo.directory.chmod(0o700)
    for suffix in ("", "-wal", "-shm", "-journal"):
        demo.store_path.with_name(demo.store_path.name + suffix).unlink(missing_ok=True)
    copy_mappings(demo.mappings_dir, overwrite=reset_mappings)
    demo.config_path.write_text(config_text(demo.simulators), encoding="utf-8")
    lines = [f"{name}={value}" for name, value in sorted(demo.env.items())]
    demo.env_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    demo.env_path.chmod(0o600)
    secrets = demo.directory / SECRETS_DIR
    secrets.mkdir(mode=0o700, exist_ok=True)
    for name, value in demo.env.items():
        path = demo.directory / secret_file(name)
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)


def copy_mappings(target: Path, *, overwrite: bool = False) -> None:
    """The shipped mappings (without examples/) plus the demo's own files."""
    source = shipped_mappings_dir()
    files = [*source.glob("*.toml"), *(source / "overrides").glob("*.toml")]
    for path in files:
        destination = target / path.relative_to(source)
        if destination.exists() and not overwrite:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    for path in demo_mappings_dir().glob("*.toml"):
        destination = target / path.name
        if overwrite or not destination.exists():
            shutil.copyfile(path, destination)


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for these values


def config_text(sims: Simulators) -> str:
    """The demo's pmsync.toml."""
    rates = ", ".join(f"{code} = {rate}" for code, rate in RATES.items() if code != "USD")
    parts = [
        f"""# pmsync demo configuration, written by `pmsync demo` (simulators/demo.py).
# The simulators run inside the demo process; their credentials are files in {SECRETS_DIR}/.

[store]
url = "sqlite:///{STORE_NAME}"   # next to this file

[mappings]
paths = ["{MAPPINGS_NAME}"]   # a copy of the shipped mappings plus the demo's write-back

[log]
level = "warning"

[currency]
reporting = "{REPORTING_CURRENCY}"
rates = {{ {rates} }}   # value of one unit in {REPORTING_CURRENCY}
from_store = false

[writeback]
max_change_share = 1.0   # the first fill writes every asked-for issue at once
auto_apply = true        # `pmsync run` writes back after each read cycle

[close_loop]
enabled = true           # an issue ships: each open ticket waiting on it gets one note

[connectors.salesforce]
type = "salesforce"
poll_interval = "{POLL_INTERVAL}"
base_url = {_toml(sims.salesforce.base_url)}
my_domain = "{MY_DOMAIN}"

[connectors.salesforce.credentials]
method = "client_credentials"
client_id = {_toml(sims.salesforce.client_id)}
client_secret = {{ file = "{secret_file(ENV_SALESFORCE)}" }}

[connectors.zendesk]
type = "zendesk"
poll_interval = "{POLL_INTERVAL}"
base_url = {_toml(sims.zendesk.base_url)}
incremental_requests_per_minute = {sims.zendesk.incremental_per_minute}
requests_per_minute = {sims.zendesk.plan_per_minute}

[connectors.zendesk.credentials]
email = {_toml(sims.zendesk.email)}
api_token = {{ file = "{secret_file(ENV_ZENDESK)}" }}

[connectors.jira]
type = "jira"
poll_interval = "{POLL_INTERVAL}"
base_url = {_toml(sims.jira.base_url)}
projects = [{", ".join(_toml(p) for p in PROJECTS)}]
requests_per_second = 200

[connectors.jira.credentials]
email = {_toml(sims.jira.email)}
api_token = {{ file = "{secret_file(ENV_JIRA)}" }}
"""
    ]
    if sims.pendo is not None:
        parts.append(
            f"""
[connectors.pendo]
type = "pendo"
poll_interval = "{POLL_INTERVAL}"
base_url = {_toml(sims.pendo.base_url)}
integration_key = {{ file = "{secret_file(ENV_PENDO)}" }}
backfill_days = {USAGE_DAYS}
slice_days = {USAGE_DAYS}
requests_per_minute = 600
"""
        )
    return "".join(parts)


# ---- filling simulators -------------------------------------------------------------------------


def fill(
    company: Company,
    *,
    salesforce: SalesforceSimulator | None = None,
    zendesk: ZendeskSimulator | None = None,
    jira: JiraSimulator | None = None,
    pendo: PendoSimulator | None = None,
) -> None:
    """Serve the company from fresh simulators (any subset of them)."""
    if salesforce is not None:
        fill_salesforce(company, salesforce)
    if zendesk is not None:
        fill_zendesk(company, zendesk)
    if jira is not None:
        fill_jira(company, jira)
    if pendo is not None:
        fill_pendo(company, pendo)


def _expect(actual: str, predicted: str, what: str) -> None:
    if actual != predicted:
        raise ValueError(
            f"{what}: the simulator assigned {actual}, the model predicted {predicted}; "
            "fill a fresh simulator"
        )


def fill_salesforce(company: Company, sim: SalesforceSimulator) -> None:
    """Users, accounts (deleted ones in the Recycle Bin) and contacts; stamps over a year."""
    install_schema(sim)
    start = sim.now() - 366 * DAY
    # A multi-currency org: CurrencyType holds units per corporate (reporting) unit.
    rates = {code: 1 / rate for code, rate in RATES.items() if code != REPORTING_CURRENCY}
    install_currencies(sim, REPORTING_CURRENCY, rates, at=start)
    for user in company.sales_users:
        values = {"Name": user.name, "Email": user.email, "IsActive": True}
        _expect(sim.insert("User", {**values, "Region__c": user.region}, at=start), user.id, "User")
    for n, account in enumerate(company.accounts):
        at = start + (n + 1) * (365 * DAY) // max(1, len(company.accounts))
        ident = sim.insert("Account", _account_values(account), at=at)
        _expect(ident, account.id, "Account")
    for n, contact in enumerate(company.contacts):
        at = start + (n + 1) * (365 * DAY) // max(1, len(company.contacts))
        values = {
            "FirstName": contact.first,
            "LastName": contact.last,
            "Name": f"{contact.first} {contact.last}",
            "Email": contact.email,
            "Title": contact.title,
            "AccountId": contact.account_id,
            "OwnerId": company.sales_users[n % len(company.sales_users)].id,
            "Champion__c": n % 7 == 0,
        }
        _expect(sim.insert("Contact", values, at=at), contact.id, "Contact")
    deleted_at = sim.now() - 2 * DAY
    for contact in company.contacts:
        if contact.deleted:
            sim.soft_delete("Contact", contact.id, at=deleted_at)
    for account in company.accounts:
        if account.deleted:
            sim.soft_delete("Account", account.id, at=deleted_at)
    fill_opportunities(company, sim, start, deleted_at)


def fill_opportunities(
    company: Company, sim: SalesforceSimulator, start: int, deleted_at: int
) -> None:
    """Opportunities (those of deleted accounts deleted with them) and junction records."""
    today = date.fromtimestamp(sim.now())
    for n, opportunity in enumerate(company.opportunities):
        at = start + (n + 1) * (365 * DAY) // max(1, len(company.opportunities))
        ident = sim.insert("Opportunity", _opportunity_values(opportunity, today), at=at)
        _expect(ident, opportunity.id, "Opportunity")
        for key in opportunity.junction_keys:
            values = {"Opportunity__c": opportunity.id, "Issue_Key__c": key, "Name": key}
            junction = sim.insert("Opportunity_Issue__c", values, at=at)
            if opportunity.deleted:
                sim.soft_delete("Opportunity_Issue__c", junction, at=deleted_at)
        if opportunity.deleted:
            sim.soft_delete("Opportunity", opportunity.id, at=deleted_at)


def _opportunity_values(opportunity: Opportunity, today: date) -> dict[str, Any]:
    return {
        "Name": opportunity.name,
        "AccountId": opportunity.account_id,
        "Amount": opportunity.amount,
        "CurrencyIsoCode": opportunity.currency,
        **opportunity_values(opportunity.stage),
        "CloseDate": (today + timedelta(days=opportunity.close_in_days)).isoformat(),
        "Type": opportunity.type,
        "OwnerId": opportunity.owner_id,
        "Jira_Issues__c": opportunity.field_text,
        "Loss_Reason__c": opportunity.loss_reason,
    }


def _account_values(account: Account) -> dict[str, Any]:
    return {
        "Name": account.name,
        "Type": account.type,
        "Industry": account.industry,
        "Website": account.website,
        "AnnualRevenue": account.annual_revenue,
        "NumberOfEmployees": account.employees,
        "CurrencyIsoCode": account.currency,
        "BillingCountry": account.country,
        "OwnerId": account.owner_id,
        "ARR__c": account.arr_field,
        "Segment__c": account.segment,
        "Open_Requests__c": None,
    }


def fill_zendesk(company: Company, sim: ZendeskSimulator) -> None:
    """Custom field definitions, organizations, users, tickets and Jira-integration links."""
    now = sim.now()
    sim.ticket_fields = ticket_fields()
    sim.organization_fields = organization_fields()
    sim.user_fields = user_fields()
    for n, org in enumerate(company.organizations):
        sim.put_organization(_organization(org, sim.base_url), at=now - 300 * DAY + n * 60)
    for n, user in enumerate(company.requesters):
        sim.put_user(_user(user, sim.base_url), at=now - 200 * DAY + n * 60)
    for ticket in company.tickets:
        record = ticket_record(ticket, sim.base_url, now)
        if ticket.deleted:
            record["status"] = "deleted"
        sim.put_ticket(record, at=now - ticket.updated_age)
    for ticket in company.tickets:
        for issue_id, key in ticket.integration_links:
            sim.add_jira_link(ticket.id, issue_id, key)


def _organization(org: Organization, base_url: str) -> dict[str, Any]:
    return {
        "id": org.id,
        "url": f"{base_url}/api/v2/organizations/{org.id}.json",
        "name": org.name,
        "shared_tickets": False,
        "shared_comments": False,
        "external_id": org.external_id,
        "domain_names": [org.domain],
        "details": "",
        "notes": "",
        "group_id": None,
        "tags": [org.segment.replace("-", "")],
        "organization_fields": {
            SEGMENT_ORG_FIELD: org.segment,
            SALESFORCE_ID_ORG_FIELD: org.salesforce_field,
        },
    }


def _user(user: Requester, base_url: str) -> dict[str, Any]:
    return {
        "id": user.id,
        "url": f"{base_url}/api/v2/users/{user.id}.json",
        "name": user.name,
        "email": user.email,
        "role": "end-user",
        "organization_id": user.organization_id,
        "active": True,
        "verified": True,
        "suspended": False,
        "time_zone": "UTC",
        "locale": "en-US",
        "phone": None,
        "external_id": None,
        "tags": [],
        "user_fields": {"plan": None},
    }


def ticket_record(ticket: Ticket, base_url: str, now: int) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "url": f"{base_url}/api/v2/tickets/{ticket.id}.json",
        "external_id": None,
        "type": ticket.type,
        "subject": ticket.subject,
        "raw_subject": ticket.subject,
        "description": ticket.description,
        "priority": ticket.priority,
        "status": ticket.status,
        "recipient": "support@vendor.example",
        "requester_id": ticket.requester_id,
        "submitter_id": ticket.requester_id,
        "assignee_id": None,
        "organization_id": ticket.organization_id,
        "group_id": 360000000001,
        "collaborator_ids": [],
        "follower_ids": [],
        "email_cc_ids": [],
        "problem_id": None,
        "has_incidents": False,
        "is_public": True,
        "due_at": None,
        "tags": ticket.tags,
        "custom_fields": [
            {"id": JIRA_KEY_FIELD, "value": ticket.field_text},
            {"id": PRODUCT_AREA_FIELD, "value": f"area_{ticket.area}"},
            {"id": SEATS_FIELD, "value": None},
        ],
        "satisfaction_rating": {"score": "unoffered"},
        "brand_id": 360000000002,
        "via": {"channel": ticket.channel, "source": {"from": {}, "to": {}, "rel": None}},
        "created_at": iso_timestamp(now - ticket.created_age),
    }


def add_demo_fields(sim: JiraSimulator) -> None:
    """The write-back targets the demo declares, beside the catalogue's "Customer ARR"."""
    known = {f["id"] for f in sim.fields}
    for field_id, name, kind, custom_type in DEMO_JIRA_FIELDS:
        if field_id not in known:
            sim.add_field(custom_field(field_id, name, kind, custom_type))


def fill_jira(company: Company, sim: JiraSimulator) -> None:
    """Projects, issues (deleted ones created, then deleted) and the demo's custom fields."""
    add_demo_fields(sim)
    dates = release_dates(sim.clock())
    for key in PROJECTS:
        if key not in sim.projects:
            sim.add_project(
                key,
                f"{key.title()} team",
                versions=VERSIONS,
                components=COMPONENTS,
                release_dates=dates,
            )
    now = sim.clock()
    cloud = sim.deployment == "cloud"
    for issue in company.issues:
        first_key = issue.old_key or issue.key  # a moved issue starts in its old project
        project = first_key.partition("-")[0]
        body = sim.create_issue(
            project, _issue_fields(issue, sim, now, cloud), at=now - issue.updated_age
        )
        _expect(f"{body['id']}/{body['key']}", f"{issue.id}/{first_key}", "Jira issue")
    by_id = {issue.id: issue for issue in company.issues}
    for issue_id, project in company.moves:
        issue = by_id[issue_id]
        moved = sim.move_issue(issue_id, project, at=now - issue.updated_age)
        _expect(moved, issue.key, "moved Jira issue")
    for issue in company.issues:
        if issue.deleted:
            sim.delete_issue(issue.id)


def release_dates(now: float) -> dict[str, str]:
    """Release dates of the demo's versions: released ones in the past, the others ahead."""
    today = date.fromtimestamp(now)
    released = [name for name, done in VERSIONS if done]
    coming = [name for name, done in VERSIONS if not done]
    dates = {
        name: today - timedelta(days=90 * (len(released) - n)) for n, name in enumerate(released)
    }
    dates.update({name: today + timedelta(days=30 + 60 * n) for n, name in enumerate(coming)})
    return {name: day.isoformat() for name, day in dates.items()}


def _issue_fields(issue: Issue, sim: JiraSimulator, now: float, cloud: bool) -> dict[str, Any]:
    project = sim.projects[issue.project]
    done = JIRA_STATUSES[issue.status][1] == "done"
    updated_ms = int((now - issue.updated_age) * 1000)
    return {
        "summary": issue.summary,
        "description": f"Customers ask: {issue.summary.lower()}.",
        "status": jira_status(issue.status),
        "resolution": {"id": "10000", "name": "Done"} if done else None,
        "resolutiondate": updated_ms if done else None,
        "fixVersions": [v for v in project["versions"] if v["name"] in issue.versions],
        "components": [c for c in project["components"] if c["name"] in issue.components],
        "labels": issue.labels,
        "issuetype": {"id": issue.issue_type[0], "name": issue.issue_type[1], "subtask": False},
        "priority": {"id": issue.priority[0], "name": issue.priority[1]},
        "assignee": _jira_person(issue.assignee, cloud) if issue.assignee else None,
        "reporter": _jira_person(issue.reporter, cloud),
        STORY_POINTS: issue.points,
        "created": int((now - issue.created_age) * 1000),
    }


def _jira_person(name: str, cloud: bool) -> dict[str, Any]:
    handle = name.lower().replace(" ", ".")
    if cloud:
        return {
            "accountId": f"5b10{zlib.crc32(handle.encode()):012d}",
            "displayName": name,
            "active": True,
            "timeZone": "UTC",
        }
    return {"name": handle, "key": handle, "displayName": name, "active": True}


def fill_pendo(company: Company, sim: PendoSimulator) -> None:
    """Accounts keyed on the Salesforce Account Id, features, and daily activity."""
    sim.custom_account_fields = {"planlevel": "string", "salesforceid": "string"}
    for feature_id, name in FEATURES:
        sim.add_feature(feature_id, name)
    names = {a.id: a for a in company.accounts}
    now_ms = sim.now_ms()
    for account_id in sorted({u.account_id for u in company.usage}):
        account = names[account_id]
        sim.put_account(
            account_id,
            name=account.name,
            custom={"planlevel": account.segment.lower(), "salesforceid": account_id},
            at_ms=now_ms - 40 * DAY * 1000,
        )
    today = sim.today()
    for usage in company.usage:
        day = today - timedelta(days=usage.days_ago)
        _add_day(sim, usage, day)
    fill_nps(company, sim)


def fill_nps(company: Company, sim: PendoSimulator) -> None:
    """The guides with their polls, and every answer: NPS ratings with their reasons."""
    for guide_id, name, polls in GUIDES:
        sim.add_guide(guide_id, name, polls)
    today = sim.today()
    for answer in company.nps:
        day = today - timedelta(days=answer.days_ago)
        at_ms = sim.day_ms(day) + answer.second_of_day * 1000
        _add_answer(sim, answer, at_ms)


def _add_answer(sim: PendoSimulator, answer: NpsAnswer, at_ms: int) -> None:
    if answer.poll != "rating":
        sim.add_poll_response(
            FEEDBACK_GUIDE_ID,
            FEEDBACK_POLL,
            answer.account_id,
            answer.visitor_id,
            at_ms,
            answer.rating,
        )
        return
    sim.add_poll_response(
        NPS_GUIDE_ID, NPS_RATING_POLL, answer.account_id, answer.visitor_id, at_ms, answer.rating
    )
    if answer.reason is not None:  # the reason comes a few seconds after the rating
        sim.add_poll_response(
            NPS_GUIDE_ID,
            NPS_REASON_POLL,
            answer.account_id,
            answer.visitor_id,
            at_ms + 7_000,
            answer.reason,
        )


def _add_day(sim: PendoSimulator, usage: DailyUsage, day: date) -> None:
    share_events, share_minutes = (
        _split(usage.events, usage.visitors),
        _split(usage.minutes, usage.visitors),
    )
    for visitor in range(usage.visitors):
        visitor_id = f"{usage.account_id}-v{visitor}"
        sim.add_events(
            usage.account_id, visitor_id, day, share_events[visitor], share_minutes[visitor]
        )
    for feature_id, events in usage.features.items():
        sim.add_events(
            usage.account_id, f"{usage.account_id}-v0", day, events, 1, feature_id=feature_id
        )


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]
