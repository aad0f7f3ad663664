"""`pmsync apply` derives and plans the daemon's way, never holding the whole World, and
applies exactly what the plan of a whole-World derivation holds.

On a small demo company (simulated Salesforce, Zendesk, Jira; SQLite and PostgreSQL stores)
with a ticket write-back and loop notes besides the demo's issue and account write-backs: the
command's full derivation is streamed (its `derived` log line says so) and each written
connector is planned in chunks (`planned_in_chunks`); its applied writes equal the plan of a
held derivation computed before it ran; the mass-change guard holds back the same plan and
`--confirm` lets it through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.simulators.demo import Demo
from pmsync.sync.store.store import dumps
from pmsync.sync.writeback.plan import Plan

from .test_plan_chunks import WRITERS, demo_with_ticket_writeback, guard

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(tmp_path: Path, store_url: str) -> Iterator[Demo]:
    with demo_with_ticket_writeback(tmp_path, store_url) as running:
        yield running


def synced_and_planned(demo: Demo) -> Plan:
    """Sync everything, then the plan of a held derivation of the whole World (stored
    nothing: the command's derivation is the store's first)."""
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        return runtime.plan(derived=runtime.derive(persist=False))
    finally:
        runtime.close()


def apply(demo: Demo, *options: str) -> tuple[Result, list[dict[str, Any]]]:
    """`pmsync apply --json` with `options`, and the log lines it wrote (JSON, on stderr)."""
    config = ["-c", str(demo.config_path), "--log-level", "info", "--log-format", "json"]
    result = CliRunner().invoke(cli, [*config, "apply", "--json", *options])
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return result, logs


def writes(dicts: list[dict[str, Any]]) -> list[str]:
    return sorted(dumps(d) for d in dicts)


def test_apply_writes_the_whole_world_plan_from_a_streamed_derivation(demo: Demo) -> None:
    expected = synced_and_planned(demo)
    kinds = {w.writeback for w in expected.writes}
    assert {"demo_ticket_issue_status", "close_loop"} <= kinds
    assert {w.connector for w in expected.writes} == set(WRITERS)
    result, logs = apply(demo)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["failed"] == []
    assert writes(shown["applied"]) == writes([w.as_dict() for w in expected.writes])
    assert re.fullmatch(r"[0-9a-f]{16}", shown["plan_id"])
    [derived] = [e for e in logs if e["event"] == "derived"]
    assert derived["mode"] == "streamed"  # held: "held", the whole World
    assert len([e for e in logs if e["event"] == "planned_in_chunks"]) == len(WRITERS)
    [applied] = [e for e in logs if e["event"] == "applied"]
    assert applied["plan_id"] == shown["plan_id"]
    again, _logs = apply(demo)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["applied"] == []


def test_apply_is_held_back_by_the_guard_over_every_chunk_until_confirmed(demo: Demo) -> None:
    guard(demo, share=0.5, minimum=20)
    expected = synced_and_planned(demo)
    assert expected.guard
    jira = demo.simulators.jira
    jira.reset_log()
    held_back, _logs = apply(demo)
    assert held_back.exit_code != 0
    for trip in expected.guard:
        assert f"{trip.writeback}: {trip.changed} of {trip.eligible} targets" in held_back.stderr
    assert jira.requests_to("/rest/api/2/issue", "PUT") == []
    confirmed, _logs = apply(demo, "--confirm")
    assert confirmed.exit_code == 0, confirmed.output
    applied = json.loads(confirmed.stdout)["applied"]
    assert writes(applied) == writes([w.as_dict() for w in expected.writes])


def test_with_a_weighted_score_apply_derives_the_whole_world_held(demo: Demo) -> None:
    """A weighted score normalises across every issue, which no chunk holds: as the daemon,
    the command then derives and plans the whole World, and applies the same writes."""
    (demo.mappings_dir / "weighed_score.toml").write_text(
        '[score.weighed]\nmethod = "weighted"\nrollup = "customer_demand"\n'
        "[score.weighed.inputs]\n"
        'revenue = { figure = "arr", weight = 2 }\nasks = { figure = "tickets", weight = 1 }\n'
    )
    expected = synced_and_planned(demo)
    result, logs = apply(demo)
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)["applied"]
    assert writes(applied) == writes([w.as_dict() for w in expected.writes])
    assert [e["mode"] for e in logs if e["event"] == "derived"] == ["held"]
    assert not [e for e in logs if e["event"] == "planned_in_chunks"]
