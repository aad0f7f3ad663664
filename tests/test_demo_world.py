"""The demo's world changes (an account's ARR rises, tickets arrive, an issue ships) and `plan`
lists the changed figures; the keep-running demo takes the changes typed into it."""

from __future__ import annotations

import json
import os
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
from pmsync.simulators.company import IssueDemand


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoRun]:
    run = run_demo(tmp_path / "demo", pendo=False)
    yield run
    run.close()


def truth(run: DemoRun) -> dict[str, IssueDemand]:
    """The expected demand per issue key, from the company model the changes keep current."""
    return {d.key: d for d in run.demo.company.truth.demand().values()}


def cli_json(run: DemoRun, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["-c", str(run.demo.config_path), *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def planned_fields(plan: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(issue key, field name) -> new value, for the Jira fields the plan writes."""
    return {
        (w["label"], w["field_label"]): w["new"]
        for w in plan["writes"]
        if w["connector"] == "jira" and w["action"] == "field"
    }


@pytest.mark.slow
def test_plan_lists_the_figures_a_change_moves_and_a_shipped_issue_closes_the_loop(
    demo: DemoRun,
) -> None:
    arr_and_tickets_show_in_plan_with_the_new_figures(demo)
    an_issue_that_ships_closes_the_loop_on_its_open_tickets(demo)


def arr_and_tickets_show_in_plan_with_the_new_figures(demo: DemoRun) -> None:
    demo.runtime.close()
    assert cli_json(demo, "plan")["writes"] == []  # nothing to do before the world changes
    before = truth(demo)

    rise = demo.change("arr")
    arrived = demo.change("tickets")
    assert "ARR rose" in rise.summary
    assert "new tickets" in arrived.summary
    after = truth(demo)
    [asked] = arrived.issue_keys
    assert after[asked].tickets == before[asked].tickets + 3
    assert len(after[asked].accounts) == len(before[asked].accounts) + 1

    assert all(r["status"] == "ok" for r in cli_json(demo, "sync", "--once"))
    fields = planned_fields(cli_json(demo, "plan"))
    changed = {key for key in after if after[key].arr != before[key].arr}
    assert changed == {*rise.issue_keys, asked}
    for key in changed:
        assert fields[(key, "Customer ARR")] == pytest.approx(after[key].arr, abs=0.01), key
    assert fields[(asked, "Customer requests")] == after[asked].tickets
    assert fields[(asked, "Customer accounts")] == len(after[asked].accounts)
    assert {key for key, _field in fields} == changed  # nothing else moves
    applied = cli_json(demo, "apply")
    assert applied["failed"] == []


def an_issue_that_ships_closes_the_loop_on_its_open_tickets(demo: DemoRun) -> None:
    shipped = demo.change("ship")
    [key] = shipped.issue_keys
    runtime = demo.runtime = Runtime.load(str(demo.demo.config_path))
    jira: Any = runtime.connector("jira")
    jira.clock = lambda: time.time() + 120  # the edit's minute has settled
    runtime.run_once()
    plan = runtime.plan()
    issue_refs = {ref for ref, issue in plan_issues(demo).items() if issue == key}
    notes = [loop for loop in plan.loops if loop[0] in issue_refs]
    assert notes, "no loop closure planned for the shipped issue"
    waiting = int(shipped.summary.split("; ")[1].split()[0])
    assert len(notes) == waiting
    result = runtime.apply(plan)
    assert not result.failed
    assert runtime.plan().loops == []  # each ticket is told once


def plan_issues(run: DemoRun) -> dict[str, str]:
    derived = run.runtime.derive(persist=False)
    return {ref: str(issue.get("key")) for ref, issue in derived.world.issues.items()}


@pytest.mark.slow
def test_the_keep_running_demo_takes_a_change_and_plan_lists_it(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    command = [sys.executable, "-m", "pmsync.app.cli"]
    process = subprocess.Popen(
        [*command, "demo", "--dir", str(directory), "--top", "3", "--keep-running"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        seen = _read_until(process.stdout, "  quit")
        assert "Change the world here" in seen
        assert f"pmsync -c {directory}/pmsync.toml plan" in seen
        process.stdin.write("arr\n")
        process.stdin.flush()
        changed = _read_until(process.stdout, "changed:")
        keys = changed.split("it asks for ", 1)[1].split(" and ")[0].rstrip(".\n").split(", ")
        config = str(directory / "pmsync.toml")
        sync = subprocess.run(
            [*command, "-c", config, "sync", "--once"], capture_output=True, text=True, check=False
        )
        assert sync.returncode == 0, sync.stderr
        plan = subprocess.run(
            [*command, "-c", config, "plan"], capture_output=True, text=True, check=False
        )
        assert plan.returncode == 0, plan.stderr
        for key in keys:
            assert f"jira {key} Customer ARR: " in plan.stdout, (key, plan.stdout[:2000])
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _read_until(stream: Any, marker: str, timeout: float = 120) -> str:
    """Lines from `stream` up to the first that starts with `marker` (the demo prints them)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(marker):
            return "".join(seen[-1:]) if marker == "changed:" else "".join(seen)
    raise AssertionError(f"no {marker!r} in:\n{''.join(seen)}")
