"""Issue 5 acceptance on the demo company: written figures are right, plans are exact, writes
happen only when something changed, a crash mid-apply loses nothing and posts nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.demo import DemoRun, run_demo
from pmsync.app.runtime import Runtime
from pmsync.connectors.jira import JiraConnector
from pmsync.simulators.company import RATES, REPORTING_CURRENCY, IssueDemand
from pmsync.simulators.company_voices import pipeline_truth
from pmsync.simulators.jira import JiraSimulator

# Every test here runs the demo company's whole cycle first (several seconds of writes).
pytestmark = pytest.mark.slow


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = run_demo(tmp_path / "demo", pendo=False)
    yield run
    run.close()


def field_ids(sim: JiraSimulator) -> dict[str, str]:
    return {f["name"]: f["id"] for f in sim.fields}


def jira_fields(sim: JiraSimulator, issue_id: str) -> dict[str, Any]:
    return dict(sim.issues[int(issue_id)].current["fields"])


def expected(run: DemoRun) -> dict[str, IssueDemand]:
    return run.demo.company.truth.demand(RATES, REPORTING_CURRENCY)


def settle_jira_edits(runtime: Runtime) -> None:
    """Let pmsync's Jira connector read edits made just now: its clock runs two minutes ahead,
    past the newest minute that Jira's search leaves unsettled."""
    jira = runtime.connector("jira")
    assert isinstance(jira, JiraConnector)
    jira.clock = lambda: time.time() + 120


def reload(run: DemoRun) -> Runtime:
    run.runtime.close()
    run.runtime = Runtime.load(str(run.demo.config_path))
    return run.runtime


def test_written_customer_arr_equals_an_independent_calculation(demo: DemoRun) -> None:
    jira = demo.demo.simulators.jira
    ids = field_ids(jira)
    truth = expected(demo)
    asked = {issue_id: d for issue_id, d in truth.items() if d.tickets}
    assert len(asked) > 100
    assert demo.applied is not None
    assert not demo.applied.failed
    deals = pipeline_truth(demo.demo.company, RATES)
    for issue_id, demand in truth.items():
        fields = jira_fields(jira, issue_id)
        if not demand.tickets and not (issue_id in deals and deals[issue_id].opportunities):
            assert fields.get(ids["Customer ARR"]) is None, demand.key  # nobody asks: no write
            continue
        assert fields[ids["Customer ARR"]] == pytest.approx(demand.arr, abs=0.01), demand.key
        assert fields[ids["Customer accounts"]] == len(demand.accounts), demand.key
        assert fields[ids["Customer requests"]] == demand.tickets, demand.key
        summary = fields[ids["Customer demand"]]
        assert summary.startswith(f"Customer ARR: {demand.arr:,.0f} {REPORTING_CURRENCY}")
        prop = jira.properties[int(issue_id)]["pmsync.customer_demand"]
        assert {a["ref"].split(":", 1)[1] for a in prop["accounts"]} == set(demand.accounts)


def test_a_quiet_cycle_writes_nothing_and_one_arr_change_touches_only_its_issues(
    demo: DemoRun,
) -> None:
    runtime = demo.runtime
    runtime.run_once()
    assert runtime.plan().writes == []

    truth = expected(demo)
    asking: dict[str, set[str]] = {}
    for issue_id, demand in truth.items():
        for account in demand.accounts:
            asking.setdefault(account, set()).add(issue_id)
    account_id = max(asking, key=lambda a: (len(asking[a]), a))
    assert len(asking[account_id]) >= 2
    salesforce = demo.demo.simulators.salesforce
    row = salesforce.table("Account").rows[account_id]
    salesforce.update("Account", account_id, {"ARR__c": float(row["ARR__c"]) + 250_000})

    runtime.run_once()
    plan = runtime.plan()
    written_issues = {w.target_key for w in plan.writes if w.connector == "jira"}
    assert written_issues == asking[account_id]
    assert {w.connector for w in plan.writes} == {"jira"}  # Salesforce counts did not change
    result = runtime.apply(plan)
    assert not result.failed
    jira = demo.demo.simulators.jira
    arr = field_ids(jira)["Customer ARR"]
    for issue_id in asking[account_id]:
        delta: float = 250_000 * (1 if truth[issue_id] else 0)
        if row.get("CurrencyIsoCode", "USD") != "USD":
            delta = 250_000 * RATES[row["CurrencyIsoCode"]]
        assert jira_fields(jira, issue_id)[arr] == pytest.approx(
            truth[issue_id].arr + delta, abs=0.01
        )


def test_plan_output_matches_what_apply_does(demo: DemoRun) -> None:
    salesforce = demo.demo.simulators.salesforce
    jira = demo.demo.simulators.jira
    changed = sorted(expected(demo).items(), key=lambda kv: -kv[1].arr)[:3]
    for _issue_id, demand in changed:
        account = sorted(demand.accounts)[0]
        row = salesforce.table("Account").rows[account]
        salesforce.update("Account", account, {"ARR__c": float(row["ARR__c"]) * 2})
    demo.runtime.run_once()
    demo.runtime.close()
    config = str(demo.demo.config_path)
    runner = CliRunner()
    planned = json.loads(runner.invoke(cli, ["-c", config, "plan", "--json"]).stdout)
    assert planned["writes"]
    jira.reset_log()
    applied = json.loads(runner.invoke(cli, ["-c", config, "apply", "--json"]).stdout)
    assert applied["failed"] == []

    def shape(writes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (w["connector"], w["target"], w["action"], w["field"], json.dumps(w["new"]))
            for w in writes
        )

    assert shape(applied["applied"]) == shape(planned["writes"])
    field_targets = {
        w["target"]
        for w in planned["writes"]
        if w["connector"] == "jira" and w["action"] == "field"
    }
    property_targets = {
        w["target"]
        for w in planned["writes"]
        if w["connector"] == "jira" and w["action"] == "property"
    }
    puts = [r for r in jira.requests if r.method == "PUT" and "/properties/" not in r.path]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in puts) == sorted(field_targets)
    assert len(jira.requests_to("/rest/api/2/issue", "PUT")) - len(puts) == len(property_targets)
    again = json.loads(runner.invoke(cli, ["-c", config, "plan", "--json"]).stdout)
    assert again["writes"] == []


def test_unknown_write_back_field_fails_validation_with_candidates_before_any_write(
    demo: DemoRun,
) -> None:
    path = demo.demo.mappings_dir / "writeback.toml"
    path.write_text(path.read_text().replace('"Customer ARR" = "arr"', '"Custmer ARR" = "arr"'))
    demo.runtime.close()
    jira = demo.demo.simulators.jira
    jira.reset_log()
    result = CliRunner().invoke(cli, ["-c", str(demo.demo.config_path), "apply"])
    assert result.exit_code == 1
    assert "writeback.demo_issue_demand.fields.Custmer ARR: no field 'Custmer ARR'" in result.stderr
    assert "'Customer ARR' (customfield_10100)" in result.stderr
    assert "Traceback" not in result.stderr
    assert jira.requests_to("/rest/api/2/issue", "PUT") == []


def test_a_human_edit_is_kept_and_reported_then_overwritten_when_the_policy_says_so(
    demo: DemoRun,
) -> None:
    jira = demo.demo.simulators.jira
    arr = field_ids(jira)["Customer ARR"]
    issue_id = max(expected(demo).values(), key=lambda d: d.arr).issue_id
    jira.update_issue(issue_id, {arr: 1.0})  # a person types over pmsync's figure
    runtime = demo.runtime
    settle_jira_edits(runtime)
    runtime.run_once(["jira.issues"])
    plan = runtime.plan()
    assert [(w.target_key, w.field) for w in plan.kept] == [(issue_id, arr)]
    assert plan.kept[0].old == 1.0
    assert not any(w.target_key == issue_id and w.field == arr for w in plan.writes)
    path = demo.demo.mappings_dir / "writeback.toml"
    path.write_text(
        path.read_text().replace('on_human_edit = "keep"', 'on_human_edit = "overwrite"')
    )
    runtime = reload(demo)
    settle_jira_edits(runtime)
    plan = runtime.plan()
    [overwrite] = [w for w in plan.writes if w.target_key == issue_id and w.field == arr]
    assert overwrite.human_edit
    runtime.apply(plan)
    assert jira_fields(jira, issue_id)[arr] == pytest.approx(expected(demo)[issue_id].arr)


def test_kill_9_during_apply_loses_no_write_and_posts_no_note_twice(tmp_path: Path) -> None:
    run = run_demo(tmp_path / "demo", pendo=False)
    try:
        _kill_during_apply(run)
    finally:
        run.close()


def _kill_during_apply(run: DemoRun) -> None:
    zendesk = run.demo.simulators.zendesk
    jira = run.demo.simulators.jira
    config = run.demo.config_path
    config.write_text(
        config.read_text().replace(
            "[close_loop]\n",
            '[close_loop]\nticket_field = "Jira issue key"\nticket_field_value = "shipped"\n',
        )
    )
    for _ in range(3):  # issues ship: their open tickets wait for a note
        run.change("ship")
    runtime = reload(run)
    jira_connector: Any = runtime.connector("jira")
    jira_connector.clock = lambda: time.time() + 120  # the edits' minute has settled
    # Some asked-for work changes after the first write-back, so there are fields to rewrite.
    salesforce = run.demo.simulators.salesforce
    for account in sorted(run.demo.company.truth.accounts)[:40]:
        row = salesforce.table("Account").rows[account]
        salesforce.update("Account", account, {"ARR__c": float(row["ARR__c"] or 0) + 1_000})
    runtime.run_once()
    plan = runtime.plan()
    loops = list(plan.loops)
    fields = [w for w in plan.writes if w.action == "field"]
    assert len(loops) > 10
    assert len(fields) > 20
    runtime.close()

    command = [
        sys.executable,
        "-m",
        "pmsync.app.cli",
        "--log-level",
        "error",
        "-c",
        str(config),
        "apply",
    ]
    for kill_after_notes in (0, 3, 9):
        before = len(_note_puts(zendesk))
        jira_before = len(jira.requests_to("/rest/api/2/issue", "PUT"))
        process = subprocess.Popen(
            command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            notes = len(_note_puts(zendesk)) - before
            writes = len(jira.requests_to("/rest/api/2/issue", "PUT")) - jira_before
            if (kill_after_notes == 0 and writes >= 15) or (
                kill_after_notes and notes >= kill_after_notes
            ):
                break
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        _out, err = process.communicate(timeout=30)
        assert b"Traceback" not in err
    finish = subprocess.run(
        command, env=os.environ.copy(), capture_output=True, timeout=120, check=False
    )
    assert finish.returncode == 0, finish.stderr.decode()

    for issue_ref, ticket_ref, marker in loops:
        ticket_id = int(ticket_ref.split(":", 1)[1])
        posted = [c for c in zendesk.comments.get(ticket_id, []) if marker in c["body"]]
        assert len(posted) == 1, (issue_ref, ticket_ref, len(posted))
        assert all(not c["public"] for c in posted)
    final = Runtime.load(str(config))
    settle_jira_edits(final)
    final.run_once()
    remaining = final.plan()
    assert remaining.writes == [], [w.describe() for w in remaining.writes[:5]]
    final.close()


def _note_puts(zendesk: Any) -> list[Any]:
    return [
        r
        for r in zendesk.requests_to("/api/v2/tickets/", "PUT")
        if (r.json() or {}).get("ticket", {}).get("comment")
    ]


def test_the_demo_command_runs_end_to_end_and_says_what_to_try_next(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--top", "5"])
    assert result.exit_code == 0, result.output
    assert "Top issues by customer ARR" in result.stdout
    assert "Linked" in result.stdout
    assert "0 failed" in result.stdout
    assert f"pmsync -c {tmp_path / 'd' / 'pmsync.toml'} report" in result.stdout
    # what it points at works with the simulators gone: reports read the store only
    report = CliRunner().invoke(
        cli,
        [
            "-c",
            str(tmp_path / "d" / "pmsync.toml"),
            "report",
            "--format",
            "csv",
            "--section",
            "issues",
            "--top",
            "3",
        ],
    )
    assert report.exit_code == 0, report.output
    lines = report.stdout.strip().splitlines()
    assert lines[0].startswith("issue,summary,status,arr")
    assert len(lines) == 4
    review = CliRunner().invoke(
        cli, ["-c", str(tmp_path / "d" / "pmsync.toml"), "links", "review", "--json"]
    )
    rows = json.loads(review.stdout)["review"]
    assert any(r["reason"] == "ambiguous" and r["candidates"] for r in rows)
    at_stake = [r["arr_at_stake"] for r in rows]
    assert at_stake == sorted(at_stake, reverse=True)  # by revenue at stake


def test_a_crash_between_the_api_write_and_the_ledger_is_not_taken_for_a_human_edit(
    demo: DemoRun,
) -> None:
    jira = demo.demo.simulators.jira
    salesforce = demo.demo.simulators.salesforce
    truth = expected(demo)
    account = max(truth[max(truth, key=lambda i: truth[i].arr)].accounts)
    asked = {i for i, d in truth.items() if account in d.accounts}

    def bump(amount: float) -> None:
        row = salesforce.table("Account").rows[account]
        salesforce.update("Account", account, {"ARR__c": float(row["ARR__c"]) + amount})

    bump(100_000)
    demo.runtime.close()
    config = str(demo.demo.config_path)
    jira.slow_answers(30.0, "/rest/api/2/issue/", "PUT")  # the write lands; the answer is late
    command = [sys.executable, "-m", "pmsync.app.cli", "--log-level", "error", "-c", config]
    subprocess.run(
        [*command, "sync", "--once", "--stream", "salesforce"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    jira.reset_log()
    apply = subprocess.Popen(
        [*command, "apply"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not jira.requests_to("/rest/api/2/issue/", "PUT") and time.monotonic() < deadline:
        time.sleep(0.01)
    apply.send_signal(signal.SIGKILL)  # dies after Jira acted, before it recorded the write
    apply.communicate(timeout=30)
    jira.latencies.clear()
    [landed] = jira.requests_to("/rest/api/2/issue/", "PUT")
    crashed_issue = landed.path.rsplit("/", 1)[-1]
    assert crashed_issue in asked

    runtime = reload(demo)
    settle_jira_edits(runtime)
    runtime.run_once()
    with runtime.writeback_lock():
        runtime.apply(runtime.plan())
    bump(50_000)
    runtime.run_once()
    plan = runtime.plan()
    assert plan.kept == []  # pmsync's own unrecorded write is not "a person's edit"
    assert crashed_issue in {w.target_key for w in plan.writes}
