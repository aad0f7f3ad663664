"""The generated demo company: consistent across the four simulators, deterministic per seed,
and what a real sync, link and rollup over HTTP produce matches its independent ground truth."""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pmsync.app.runtime import Runtime
from pmsync.simulators.company import (
    ACCOUNT_RULES,
    FREE_MAIL,
    RATES,
    AccountStatus,
    AccountTruth,
    Company,
    CompanySize,
    IssueTruth,
    TicketTruth,
    Truth,
    build_company,
    shared_domain_pairs,
)
from pmsync.simulators.demo import (
    ENV_JIRA,
    Demo,
    copy_mappings,
    fill,
    launch,
    shipped_mappings_dir,
    start_simulators,
)
from pmsync.simulators.jira.app import JiraSimulator
from pmsync.simulators.salesforce.app import SalesforceSimulator
from pmsync.simulators.zendesk.app import ZendeskSimulator
from pmsync.sync.links.models import FREE_MAIL as PMSYNC_FREE_MAIL
from pmsync.sync.mapping.loader import load_mappings

REPO = Path(__file__).resolve().parent.parent
SMALL = CompanySize(accounts=60, contacts=150, users=240, tickets=600, issues=60)


@pytest.fixture(scope="module")
def company() -> Company:
    return build_company(11, SMALL)


# ---- the model --------------------------------------------------------------------------------


def test_same_seed_same_company_other_seed_other_company() -> None:
    first, again, other = build_company(5, SMALL), build_company(5, SMALL), build_company(6, SMALL)
    assert first == again
    assert first.truth == again.truth
    assert [a.name for a in first.accounts] != [a.name for a in other.accounts]


def test_filled_simulators_serve_the_same_records_for_a_seed() -> None:
    def snapshot() -> tuple[Any, ...]:
        sf, zd, jira = SalesforceSimulator(), ZendeskSimulator(), JiraSimulator()
        fill(build_company(5, SMALL), salesforce=sf, zendesk=zd, jira=jira)
        stamps = {"CreatedDate", "LastModifiedDate", "SystemModstamp"}
        accounts = [
            {k: v for k, v in row.items() if k not in stamps}
            for row in sf.tables["Account"].rows.values()
        ]
        times = {"created_at", "updated_at", "generated_timestamp", "_ts"}
        tickets = [
            {k: v for k, v in t.items() if k not in times} for t in zd.tickets.items.values()
        ]
        issues = [
            (s.current["id"], s.current["key"], s.current["fields"]["summary"])
            for s in jira.issues.values()
        ]
        links = [
            (link["ticket_id"], link["issue_id"], link["issue_key"])
            for link in zd.jira_links.values()
        ]
        return accounts, tickets, issues, links

    assert snapshot() == snapshot()


def test_records_agree_across_systems(company: Company) -> None:
    accounts = {a.id: a for a in company.accounts}
    assert all(c.account_id in accounts for c in company.contacts)
    assert all(o.account_id in accounts for o in company.organizations)
    for org in company.organizations:
        assert org.external_id in (None, org.account_id, org.account_id[:15])
        assert org.domain == accounts[org.account_id].domain
    orgs = {o.id: o for o in company.organizations}
    for user in company.requesters:
        domain = user.email.rsplit("@", 1)[1]
        if user.account_id is None:
            assert domain in FREE_MAIL
            assert user.organization_id is None
        else:
            assert domain in (*FREE_MAIL, accounts[user.account_id].domain)
        if user.organization_id is not None:
            assert orgs[user.organization_id].account_id == user.account_id
    assert len({u.email for u in company.requesters}) == len(company.requesters)
    requesters = {u.id for u in company.requesters}
    issues = {i.id: i for i in company.issues}
    keys = {i.key for i in company.issues} | {i.old_key for i in company.issues if i.old_key}
    for ticket in company.tickets:
        assert ticket.requester_id in requesters
        for issue_id, key in ticket.integration_links:
            issue = issues[issue_id]
            assert key in (issue.key, issue.old_key)
        for key in (ticket.field_text or "").split(","):
            truth = company.truth.tickets[ticket.id]
            assert not key.strip() or key.strip().upper() in keys | set(truth.dangling)


def test_every_trap_is_in_the_data(company: Company) -> None:
    truth = company.truth
    live = [t for t in truth.tickets.values() if not t.deleted]
    orgs = {o.id for o in company.organizations}
    requesters = {u.id: u for u in company.requesters}
    assert any(u.email.endswith(FREE_MAIL) and u.account_id for u in company.requesters)
    assert len(shared_domain_pairs(company)) == company.mess.shared_domains
    assert any(
        t.organization_id is None and requesters[t.requester_id].organization_id is None
        for t in company.tickets
    )
    assert {t.status for t in live} == {"linked", "ambiguous", "missing"}
    assert set(ACCOUNT_RULES) <= {t.rule for t in live}
    assert any(o.external_id and len(o.external_id) == 15 for o in company.organizations)
    assert sum(1 for t in live if t.dangling) >= company.mess.dangling_keys
    assert sum(1 for i in company.issues if i.old_key) == company.mess.moved_issues
    assert {a.currency for a in company.accounts} == {"USD", "EUR", "GBP"}
    assert any(a.arr_field is None for a in company.accounts)
    assert any(a.deleted for a in company.accounts)
    assert any(t.deleted for t in company.tickets)
    assert all(o in orgs for o in (u.organization_id for u in company.requesters) if o)


def test_moved_issues_are_linked_by_id_under_their_old_key(company: Company) -> None:
    moved = {i.id: i for i in company.issues if i.old_key}
    linked = [
        (ticket, issue_id, key)
        for ticket in company.tickets
        for issue_id, key in ticket.integration_links
        if issue_id in moved
    ]
    assert linked
    for ticket, issue_id, key in linked:
        assert key == moved[issue_id].old_key != moved[issue_id].key
        assert issue_id in company.truth.tickets[ticket.id].issue_ids
    old_keys = {str(i.old_key) for i in moved.values()}
    assert not [i for i in company.issues if i.key in old_keys]  # no issue has an old key now
    # Tickets name old keys in the key field too, and the truth links them to the moved issue.
    naming = [
        t
        for t in company.tickets
        if old_keys & {k.strip().upper() for k in (t.field_text or "").split(",")}
    ]
    assert naming
    for ticket in naming:
        truth = company.truth.tickets[ticket.id]
        assert set(truth.issue_ids) & set(moved)
        assert not old_keys & set(truth.dangling)
    assert any(f"[{key}]" in t.description for t in company.tickets for key in old_keys)


def test_ground_truth_of_the_messy_cases(company: Company) -> None:
    truth = company.truth.tickets
    requesters = {u.id: u for u in company.requesters}
    contacts = {c.email.lower() for c in company.contacts if not c.deleted}
    for _parent, child in shared_domain_pairs(company):
        filed = [
            truth[t.id]
            for t in company.tickets
            if requesters[t.requester_id].account_id == child.id
            and requesters[t.requester_id].email.lower() not in contacts
            and not requesters[t.requester_id].email.endswith(FREE_MAIL)
        ]
        assert filed
        assert all(t.status == "ambiguous" and child.id in t.candidates for t in filed)
    deleted = {a.id for a in company.accounts if a.deleted}
    assert all(t.status == "missing" for t in truth.values() if t.true_account in deleted)
    strangers = [t for t in truth.values() if t.true_account is None]
    assert strangers
    assert all(t.account is None for t in strangers)
    wrong = [t for t in truth.values() if t.account and t.account != t.true_account]
    assert wrong == []  # the rules never name the wrong account in this company


def test_demand_counts_each_account_once_in_one_currency() -> None:
    def ticket(n: int, account: str | None, issues: tuple[str, ...], deleted: bool = False) -> Any:
        status: AccountStatus = "linked" if account else "missing"
        rules = dict.fromkeys(issues, "ticket_field")
        return TicketTruth(n, deleted, account, account, None, status, (), issues, rules, ())

    truth = Truth(
        tickets={
            1: ticket(1, "A", ("10",)),
            2: ticket(2, "A", ("10", "11")),
            3: ticket(3, "B", ("10",)),
            4: ticket(4, None, ("10",)),
            5: ticket(5, "C", ("10",), deleted=True),
        },
        accounts={
            "A": AccountTruth("A", "Acme", 1000.0, "USD", "SMB", False),
            "B": AccountTruth("B", "Globex", 1000.0, "EUR", "SMB", False),
            "C": AccountTruth("C", "Initech", 5000.0, "USD", "SMB", False),
        },
        issues={
            "10": IssueTruth("10", "CORE-1", "CORE", False, None),
            "11": IssueTruth("11", "CORE-2", "CORE", False, None),
            "12": IssueTruth("12", "CORE-3", "CORE", True, None),
        },
    )
    demand = truth.demand({"EUR": 1.1})
    assert set(demand) == {"10", "11"}
    assert demand["10"].accounts == {"A", "B"}
    assert demand["10"].arr == pytest.approx(2100.0)
    assert (demand["10"].tickets, demand["10"].unlinked_tickets) == (4, 1)
    assert (demand["11"].arr, demand["11"].tickets) == (1000.0, 1)


def test_the_generator_knows_the_shipped_link_rules() -> None:
    mappings = load_mappings(sorted(shipped_mappings_dir().glob("*.toml")))
    rules = [r for r in mappings.links.ticket_account.rules if r != "override"]
    assert tuple(rules) == ACCOUNT_RULES
    assert set(FREE_MAIL) <= set(mappings.links.ticket_account.free_mail_domains)
    assert set(FREE_MAIL) <= set(PMSYNC_FREE_MAIL)


# ---- the launched demo --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with launch(tmp_path_factory.mktemp("demo")) as launched:
        yield launched


@pytest.fixture(scope="module")
def synced(demo: Demo) -> Iterator[Runtime]:
    previous = {name: os.environ.get(name) for name in demo.env}
    demo.export_env()
    runtime = Runtime.load(str(demo.config_path))
    try:
        yield runtime
    finally:
        runtime.close()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def results(synced: Runtime) -> list[Any]:
    return synced.run_once()


def test_a_full_sync_lands_every_stream(demo: Demo, synced: Runtime, results: list[Any]) -> None:
    assert [(r.connector, r.stream, r.status) for r in results if r.status != "ok"] == []
    expected = demo.expected_counts()
    landed = {stream: len(synced.store.live_keys(*stream)) for stream in expected}
    assert landed == expected
    assert synced.store.dead_letter_rows() == []


def test_links_match_the_ground_truth(demo: Demo, synced: Runtime, results: list[Any]) -> None:
    derived = synced.derive(persist=False)
    truth = demo.company.truth.tickets
    live = {f"zendesk:{t.ticket_id}": t for t in truth.values() if not t.deleted}
    assert set(derived.world.tickets) == set(live)
    found = {
        ticket: (link.target.split(":", 1)[1], link.rule)
        for ticket, link in derived.links.account_of.items()
    }
    assert found == {ref: (t.account, t.rule) for ref, t in live.items() if t.account}
    ambiguous = {
        u.ticket: tuple(c.split(":", 1)[1] for c in u.candidates)
        for u in derived.links.unresolved
        if u.kind == "ticket_account" and u.reason == "ambiguous"
    }
    assert ambiguous == {ref: t.candidates for ref, t in live.items() if t.status == "ambiguous"}
    issues = {
        ticket: {target.split(":", 1)[1]: link.rule for target, link in per_issue.items()}
        for ticket, per_issue in derived.links.issues_of.items()
    }
    assert issues == {ref: dict(t.issue_rules) for ref, t in live.items() if t.issue_ids}


def test_rollups_match_an_independent_calculation(
    demo: Demo, synced: Runtime, results: list[Any]
) -> None:
    rollups = synced.derive(persist=False).rollups["customer_demand"]
    expected = demo.company.truth.demand(RATES, "USD")
    assert {r.split(":", 1)[1] for r in rollups} == set(expected)
    for ref, rollup in rollups.items():
        want = expected[ref.split(":", 1)[1]]
        assert rollup.issue_key == want.key
        assert (rollup.accounts, rollup.tickets, rollup.unlinked_tickets) == (
            len(want.accounts),
            want.tickets,
            want.unlinked_tickets,
        ), want.key
        assert rollup.arr == pytest.approx(want.arr, abs=0.01), want.key
    top = max(expected.values(), key=lambda d: d.arr)
    assert len(top.accounts) >= 10  # demand is skewed: a few issues carry much revenue


# ---- the launcher's files ---------------------------------------------------------------------


def test_launch_writes_a_config_with_secret_file_references_only(demo: Demo) -> None:
    config = tomllib.loads(demo.config_path.read_text())
    secrets = [
        config["connectors"]["salesforce"]["credentials"]["client_secret"],
        config["connectors"]["zendesk"]["credentials"]["api_token"],
        config["connectors"]["jira"]["credentials"]["api_token"],
        config["connectors"]["pendo"]["integration_key"],
    ]
    assert all(set(s) == {"file"} for s in secrets)
    files = {(demo.directory / s["file"]).read_text().strip() for s in secrets}
    assert files == set(demo.env.values())
    for s in secrets:
        assert stat.S_IMODE((demo.directory / s["file"]).stat().st_mode) == 0o600
    assert all(value not in demo.config_path.read_text() for value in demo.env.values())
    lines = dict(line.split("=", 1) for line in demo.env_path.read_text().splitlines())
    assert lines == demo.env
    assert stat.S_IMODE(demo.env_path.stat().st_mode) == 0o600
    assert config["store"]["url"] == "sqlite:///pmsync-demo.db"
    assert (demo.mappings_dir / "overrides" / "links.toml").is_file()
    assert (demo.mappings_dir / "writeback.toml").is_file()


def test_the_jira_simulator_has_the_write_back_fields(demo: Demo) -> None:
    answer = requests.get(
        f"{demo.simulators.jira.base_url}/rest/api/2/field",
        auth=(demo.simulators.jira.email, demo.env[ENV_JIRA]),
        timeout=10,
    )
    names = [f["name"] for f in answer.json()]
    for name in ("Customer ARR", "Customer accounts", "Customer demand", "Customer requests"):
        assert names.count(name) == 1, name


def test_copied_mappings_load_with_the_demo_write_back(demo: Demo) -> None:
    mappings = load_mappings(sorted(demo.mappings_dir.glob("*.toml")))
    assert set(mappings.writebacks) == {"demo_issue_demand", "demo_account_requests"}
    assert "issues" in mappings.for_connector("jira", "jira")
    assert mappings.overrides_path == (demo.mappings_dir / "overrides" / "links.toml").resolve()


def test_a_relaunch_keeps_mapping_edits_and_starts_a_fresh_store(tmp_path: Path) -> None:
    copy_mappings(tmp_path / "mappings")
    edited = tmp_path / "mappings" / "links.toml"
    edited.write_text(edited.read_text() + "\n# my edit\n")
    (tmp_path / "pmsync-demo.db").write_text("old store")
    size = CompanySize(accounts=20, contacts=30, users=40, tickets=60, issues=12)
    with launch(tmp_path, size=size, pendo=False) as again:
        assert "# my edit" in edited.read_text()
        assert not again.store_path.exists()
        assert "connectors.pendo" not in again.config_path.read_text()
        assert ("pendo", "accounts") not in again.expected_counts()


def test_simulators_start_on_distinct_free_ports() -> None:
    sims = start_simulators(pendo=True)
    try:
        urls = [sim.base_url for sim in sims.all()]
        assert len(set(urls)) == 4
        assert all(u.startswith("http://127.0.0.1:") for u in urls)
    finally:
        sims.stop()
