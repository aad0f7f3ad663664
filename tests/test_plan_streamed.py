"""`pmsync plan` derives and plans as `pmsync apply` does, never holding the whole World, and
shows what the plan of a whole-World derivation holds, with the same scores left empty.

On a small demo company (simulated Salesforce, Zendesk, Jira; SQLite and PostgreSQL stores)
with a ticket write-back and loop notes besides the demo's issue and account write-backs: the
command's full derivation is streamed (its `derived` log line says so), each written connector
is planned in chunks (`planned_in_chunks`), and its JSON (writes, kept human edits, guard
trips, clearing count, empty scores) equals that of a held derivation computed before it ran.
The scores left empty are listed for every issue in a score's scope, also where no write-back
writes to issues. With a weighted score the plan is of the held World, as apply's; a second
`plan` with nothing changed stores no derivation again and shows the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.app.runtime import Runtime
from pmsync.simulators.demo import Demo
from pmsync.sync.links.report import empty_scores
from pmsync.sync.store.store import dumps

from .test_plan_chunks import WRITERS, demo_with_ticket_writeback, guard

pytestmark = pytest.mark.slow

# A score of every issue, asked for or not, left empty where an issue has no story points.
SIZED = (
    '[score.sized]\nmethod = "formula"\nformula = "effort * 2"\nscope = "all"\n'
    '[score.sized.inputs]\neffort = { field = "story_points" }\n'
)
WEIGHED = (
    '[score.weighed]\nmethod = "weighted"\nrollup = "customer_demand"\n'
    "[score.weighed.inputs]\n"
    'revenue = { figure = "arr", weight = 2 }\nasks = { figure = "tickets", weight = 1 }\n'
)


@pytest.fixture
def demo(tmp_path: Path, store_url: str) -> Iterator[Demo]:
    with demo_with_ticket_writeback(tmp_path, store_url) as running:
        yield running


def held_plan(demo: Demo) -> tuple[dict[str, Any], set[str]]:
    """Sync everything, then what `plan --json` showed from a held derivation of the whole
    World (stored nothing: the command's derivation is the store's first), and the keys of
    the issues nobody asks for."""
    runtime = Runtime.load(str(demo.config_path))
    try:
        runtime.run_once()
        derived = runtime.derive(persist=False)
        plan = runtime.plan(derived=derived)
        unasked = {r.issue_key for r in derived.rollups["customer_demand"].values() if r.empty}
        shown = comparable(
            {
                "writes": [w.as_dict() for w in plan.writes],
                "clearing": len(plan.clearing),
                "kept_human_edits": [w.as_dict() for w in plan.kept],
                "needs_confirmation": [t.__dict__ for t in plan.guard],
                "empty_scores": empty_scores(derived).as_dicts(),
            }
        )
        return shown, unasked
    finally:
        runtime.close()


def comparable(shown: dict[str, Any]) -> dict[str, Any]:
    """A plan's JSON, the order of writes aside (the empty scores keep theirs: it is shown)."""
    return {
        "writes": sorted(dumps(w) for w in shown["writes"]),
        "clearing": shown["clearing"],
        "kept_human_edits": sorted(dumps(w) for w in shown["kept_human_edits"]),
        "needs_confirmation": sorted(dumps(t) for t in shown["needs_confirmation"]),
        "empty_scores": shown["empty_scores"],
    }


def plan(demo: Demo) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`pmsync plan --json`, comparable, and the log lines it wrote (JSON, on stderr)."""
    config = ["-c", str(demo.config_path), "--log-level", "info", "--log-format", "json"]
    result = CliRunner().invoke(cli, [*config, "plan", "--json"])
    assert result.exit_code == 0, result.output
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return comparable(json.loads(result.stdout)), logs


def without_issue_writeback(demo: Demo) -> None:
    """No write-back writes to Jira (scores are still declared), and a score of every issue."""
    writeback = demo.mappings_dir / "writeback.toml"
    text = writeback.read_text()
    start = text.index("[writeback.demo_issue_demand]")
    writeback.write_text(text[:start] + text[text.index("[writeback.demo_account_requests]") :])
    (demo.mappings_dir / "sized_score.toml").write_text(SIZED)


@pytest.mark.parametrize("issue_writeback", [True, False], ids=["jira-written", "jira-unwritten"])
def test_plan_shows_the_whole_world_plan_from_a_streamed_derivation(
    demo: Demo, issue_writeback: bool
) -> None:
    if not issue_writeback:
        without_issue_writeback(demo)
    guard(demo, share=0.5, minimum=20)  # the plan holds guard trips, decided over all chunks
    expected, unasked = held_plan(demo)
    assert expected["needs_confirmation"]
    written = {json.loads(w)["connector"] for w in expected["writes"]}
    assert written == (set(WRITERS) if issue_writeback else set(WRITERS) - {"jira"})
    assert {row["score"] for row in expected["empty_scores"]} >= {"rice"}
    shown, logs = plan(demo)
    assert shown == expected
    [derived] = [e for e in logs if e["event"] == "derived"]
    assert derived["mode"] == "streamed"  # held: "held", the whole World
    chunked = [e for e in logs if e["event"] == "planned_in_chunks"]
    assert len(chunked) == len(written)
    if not issue_writeback:  # issues nobody asks for, of a connector nothing writes to
        sized = [row for row in shown["empty_scores"] if row["score"] == "sized"]
        assert {row["missing"] for row in sized} == {"effort: field story_points is empty"}
        assert {row["issue"] for row in sized} & unasked


def test_with_a_weighted_score_plan_shows_the_held_plan_also_when_nothing_changed(
    demo: Demo,
) -> None:
    """A weighted score normalises across every issue, which no chunk holds: as apply, the
    command then derives and plans the whole World, held. Run again with nothing changed, its
    derivation is quiet (nothing is derived and stored again: the plan is of a World derived
    without storing it, the empty scores those stored the first time) and it shows the same
    plan and empty scores."""
    (demo.mappings_dir / "weighed_score.toml").write_text(WEIGHED)
    expected, _unasked = held_plan(demo)
    assert expected["writes"]
    assert expected["empty_scores"]
    first, logs = plan(demo)
    assert first == expected
    assert [e["mode"] for e in logs if e["event"] == "derived"] == ["held"]
    assert not [e for e in logs if e["event"] == "planned_in_chunks"]
    again, logs = plan(demo)
    assert again == expected
    assert not [e for e in logs if e["event"] == "derived"]  # before: a full one each time
