"""Issue 16 acceptance on the demo company: pipeline at stake, detractor ARR and the declared
scores that pmsync wrote to the simulated Jira equal an independent calculation from the
company's ground truth; a quiet cycle writes nothing; one opportunity's new amount rewrites
exactly the issues it cites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pmsync.app.demo import DemoRun, run_demo
from pmsync.simulators.company import (
    DETRACTOR_ARR_FIELD,
    PIPELINE_FIELD,
    PRIORITY_FIELD,
    RATES,
    RICE_FIELD,
    IssueDemand,
)
from pmsync.simulators.company_voices import (
    DEFAULT_EFFORT,
    IssuePipelineTruth,
    detractor_truth,
    pipeline_truth,
    rice_truth,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    run = run_demo(tmp_path_factory.mktemp("decision") / "demo")
    yield run
    run.close()


def demand(run: DemoRun) -> dict[str, IssueDemand]:
    return run.demo.company.truth.demand(RATES, "USD")


def pipeline(run: DemoRun) -> dict[str, IssuePipelineTruth]:
    return pipeline_truth(run.demo.company, RATES)


def jira_fields(run: DemoRun, issue_id: str) -> dict[str, Any]:
    return dict(run.demo.simulators.jira.issues[int(issue_id)].current["fields"])


def asked(run: DemoRun) -> set[str]:
    """Issues somebody asks for: a ticket, or an open opportunity citing them."""
    deals = pipeline(run)
    return {
        issue_id
        for issue_id, wanted in demand(run).items()
        if wanted.tickets or (issue_id in deals and deals[issue_id].opportunities)
    }


def test_the_first_cycle_applied_everything_without_failures(demo: DemoRun) -> None:
    assert demo.applied is not None
    assert not demo.applied.failed
    assert demo.runtime.store.dead_letter_rows() == []


def test_pipeline_at_stake_written_to_jira_equals_an_independent_calculation(
    demo: DemoRun,
) -> None:
    deals = pipeline(demo)
    wanted = asked(demo)
    cited_open = {i for i, d in deals.items() if d.opportunities}
    assert len(cited_open) > 20
    assert cited_open - {i for i, d in demand(demo).items() if d.tickets}  # pipeline-only issues
    for issue_id in demand(demo):
        written = jira_fields(demo, issue_id).get(PIPELINE_FIELD)
        if issue_id not in wanted:
            assert written is None, issue_id  # nobody asks: nothing written
            continue
        expected = deals[issue_id].amount if issue_id in deals else 0.0
        assert written == pytest.approx(expected, abs=0.01), issue_id


def test_pipeline_counts_each_opportunity_once_and_keeps_lost_reasons(demo: DemoRun) -> None:
    derived = demo.runtime.derive(persist=False)
    rollups = derived.rollups["customer_demand"]
    deals = pipeline(demo)
    both_ways = [
        o
        for o in demo.demo.company.opportunities
        if not o.deleted and o.junction_keys and o.field_text
    ]
    assert both_ways  # the company cites some issues both in the field and by junction
    lost_somewhere = False
    for issue_id, truth in deals.items():
        figures = rollups[f"jira:{issue_id}"].value()
        assert figures["pipeline_opportunities"] == len(truth.opportunities), issue_id
        assert figures["pipeline_accounts"] == len(truth.accounts), issue_id
        assert figures["lost_opportunities"] == truth.lost, issue_id
        listed = {o["ref"].split(":", 1)[1] for o in figures["opportunities"]}
        assert listed == set(truth.opportunities), issue_id
        lost_somewhere |= bool(figures["lost_reasons"])
    assert lost_somewhere


def test_detractor_arr_written_to_jira_equals_an_independent_calculation(demo: DemoRun) -> None:
    wanted = asked(demo)
    expected = detractor_truth(demo.demo.company, demand(demo), RATES)
    assert sum(1 for arr, count in expected.values() if count) > 20
    for issue_id, (arr, _count) in expected.items():
        written = jira_fields(demo, issue_id).get(DETRACTOR_ARR_FIELD)
        if issue_id not in wanted:
            assert written is None, issue_id
            continue
        assert written == pytest.approx(arr, abs=0.01), issue_id


def test_scores_written_to_jira_equal_an_independent_calculation(demo: DemoRun) -> None:
    company = demo.demo.company
    deals = pipeline(demo)
    rice = rice_truth(company, demand(demo), deals)
    detractors = detractor_truth(company, demand(demo), RATES)
    points = {i.id: i.points for i in company.issues}
    assert sum(1 for v in rice.values() if v) > 100
    assert any(v is None for v in rice.values())  # pipeline-only issues: no asking account
    for issue_id, wanted in demand(demo).items():
        fields = jira_fields(demo, issue_id)
        assert fields.get(RICE_FIELD) == pytest.approx(rice.get(issue_id), abs=0.011), issue_id
        if issue_id not in rice:
            assert fields.get(PRIORITY_FIELD) is None, issue_id
            continue
        money = wanted.arr + getattr(deals.get(issue_id), "amount", 0.0)
        money += 2 * detractors[issue_id][0]
        effort = max(points[issue_id] or DEFAULT_EFFORT, 1)
        assert fields[PRIORITY_FIELD] == pytest.approx(money / 1000 / effort, abs=0.011)


def test_each_score_keeps_its_inputs_in_the_issue_property(demo: DemoRun) -> None:
    jira = demo.demo.simulators.jira
    rice = rice_truth(demo.demo.company, demand(demo), pipeline(demo))
    issue_id = max((i for i, v in rice.items() if v), key=lambda i: rice[i] or 0)
    prop = jira.properties[int(issue_id)]["pmsync.customer_demand"]
    score = prop["figures"]["scores"]["rice"]
    assert score["value"] == pytest.approx(rice[issue_id], abs=0.011)
    assert set(score["inputs"]) == {"reach", "impact", "confidence", "effort"}
    inputs = score["inputs"]
    product = inputs["reach"]["value"] * inputs["impact"]["value"] * inputs["confidence"]["value"]
    assert product / inputs["effort"]["value"] == pytest.approx(score["value"], abs=0.011)
    assert inputs["effort"]["from"] == "field story_points"
    empty = next(i for i, v in rice.items() if v is None)
    missing = jira.properties[int(empty)]["pmsync.customer_demand"]["figures"]["scores"]["rice"]
    assert missing["value"] is None
    assert any(m.startswith("impact:") for m in missing["missing"])


def test_a_quiet_cycle_writes_nothing_and_one_amount_rewrites_exactly_its_issues(
    demo: DemoRun,
) -> None:
    runtime = demo.runtime
    runtime.run_once()
    assert runtime.plan().writes == []

    deals = pipeline(demo)
    open_deals = {o.id: o for o in demo.demo.company.opportunities if not o.deleted}
    cites: dict[str, set[str]] = {}
    for issue_id, truth in deals.items():
        for ident in truth.opportunities:
            cites.setdefault(ident, set()).add(issue_id)
    chosen = max(cites, key=lambda o: (len(cites[o]), o))
    assert open_deals[chosen].amount
    salesforce = demo.demo.simulators.salesforce
    amount = salesforce.table("Opportunity").rows[chosen]["Amount"]
    salesforce.update("Opportunity", chosen, {"Amount": float(amount) + 40_000})

    runtime.run_once()
    plan = runtime.plan()
    assert {w.target_key for w in plan.writes} == cites[chosen]
    assert {w.connector for w in plan.writes} == {"jira"}
    result = runtime.apply(plan)
    assert not result.failed
    delta = 40_000 * RATES[open_deals[chosen].currency]
    for issue_id in cites[chosen]:
        written = jira_fields(demo, issue_id)[PIPELINE_FIELD]
        assert written == pytest.approx(deals[issue_id].amount + delta, abs=0.01)
    runtime.run_once()
    assert runtime.plan().writes == []


def test_plan_lists_the_scores_left_empty_and_why(demo: DemoRun, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pmsync.app.cli import cli

    demo.runtime.close()
    result = CliRunner().invoke(cli, ["-c", str(demo.demo.config_path), "plan"])
    assert result.exit_code == 0, result.output
    assert "score(s) left empty" in result.stdout
    assert "rice: impact: no asking account" in result.stdout
