"""Declared priority scores: the README's examples pass `check-config`, mistakes are refused
naming file, path and what is available, and each method computes what it documents."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pmsync.app.cli import cli
from pmsync.sync.links.formula import Formula, FormulaError
from pmsync.sync.links.models import NUMERIC_ISSUE_FIGURES
from pmsync.sync.links.score_models import ScoreSpec
from pmsync.sync.links.scores import IssueFacts, compute_scores, normalise
from pmsync.sync.links.world import Entity

REPO = Path(__file__).resolve().parent.parent
JIRA = """
[connectors.jira]
type = "jira"
base_url = "https://acme.atlassian.net"
projects = ["CORE"]

[connectors.jira.credentials]
email = "pmsync@acme.com"
api_token = { env = "HOME" }
"""


def readme_blocks(containing: str) -> list[str]:
    """The README's TOML code blocks that contain `containing`."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if containing in b]


def check(tmp_path: Path, scores: str, writeback: str = "") -> tuple[int, str]:
    """check-config on the shipped Jira and links mappings plus `scores`."""
    (tmp_path / "scores.toml").write_text(scores + writeback)
    config = tmp_path / "pmsync.toml"
    paths = [REPO / "mappings" / "jira.toml", REPO / "mappings" / "links.toml"]
    listed = ", ".join(f'"{p}"' for p in [*paths, tmp_path / "scores.toml"])
    config.write_text(f"[mappings]\npaths = [{listed}]\n{JIRA}")
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    return result.exit_code, result.output


def test_the_readme_rice_example_passes_check_config(tmp_path: Path) -> None:
    [rice] = readme_blocks("[score.rice]")
    [formula] = readme_blocks("[score.priority]")
    writeback = """
[writeback.scores]
connector = "jira"
target = "issue"
[writeback.scores.fields]
"RICE score" = "rice"
"Priority score" = "priority"
"Pipeline at stake" = "pipeline"
"Detractor ARR" = "detractor_arr"
"""
    code, output = check(tmp_path, rice + formula, writeback)
    assert code == 0, output
    assert output.startswith("ok:")


def test_a_formula_naming_an_unknown_figure_lists_the_figures_available(tmp_path: Path) -> None:
    [formula] = readme_blocks("[score.priority]")
    code, output = check(tmp_path, formula.replace("pipeline +", "pipline +"))
    assert code == 1
    assert "score.priority.formula: the formula names unknown figure 'pipline'" in output
    assert "did you mean 'pipeline'?" in output
    listed = output.split("figures available: ", 1)[1]
    for figure in (*NUMERIC_ISSUE_FIGURES, "effort"):
        assert figure in listed
    assert "scores.toml" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ('{ figure = "accounts" }', '{ figure = "acounts" }', "no numeric figure 'acounts'"),
        ('field = "story_points"', 'field = "story_pionts"', "no issue field 'story_pionts'"),
        ("email_domain = 0.5", "email_domains = 0.5", "no ticket -> account rule"),
        ('method = "rice"', 'method = "rise"', "must be one of"),
        ('reach = { figure = "accounts" }', "", "rice takes inputs reach, impact"),
        ('rollup = "customer_demand"', 'rollup = "demand"', "no rollup 'demand'"),
        ("score.rice", "score.arr", "'arr' is already a figure"),
    ],
)
def test_score_mistakes_are_refused_with_their_path(
    tmp_path: Path, change: str, where: str, message: str
) -> None:
    [rice] = readme_blocks("[score.rice]")
    assert change in rice
    code, output = check(tmp_path, rice.replace(change, where))
    assert code == 1
    assert message in output, output
    assert "score." in output
    assert "Traceback" not in output


def test_a_write_back_may_name_a_declared_score_but_not_an_undeclared_one(
    tmp_path: Path,
) -> None:
    [rice] = readme_blocks("[score.rice]")
    writeback = """
[writeback.scores]
connector = "jira"
target = "issue"
[writeback.scores.fields]
"RICE score" = "rcie"
"""
    code, output = check(tmp_path, rice, writeback)
    assert code == 1
    assert "no figure 'rcie' for issue targets; did you mean 'rice'?" in output


@pytest.mark.parametrize(
    "text",
    [
        "arr.__class__",
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "[x for x in range(9)]",
        "exec('1')",
    ],
)
def test_a_formula_is_arithmetic_only(text: str) -> None:
    with pytest.raises(FormulaError):
        Formula.compile(text, ["arr", "x"])


def test_a_formula_evaluates_with_the_allowed_functions() -> None:
    formula = Formula.compile("max(arr, 10) / sqrt(effort) + log10(100)", ["arr", "effort"])
    assert formula.names == {"arr", "effort"}
    assert formula.evaluate({"arr": 40.0, "effort": 4.0}) == pytest.approx(22.0)


# ---- computation ------------------------------------------------------------------------------


def issue(key: str, **fields: Any) -> Entity:
    return Entity(f"jira:{key}", "jira", "issues", key, {"key": key, **fields})


def facts(
    key: str, figures: dict[str, Any], accounts: list[dict[str, Any]] | None = None, **fields: Any
) -> IssueFacts:
    return IssueFacts(issue(key, **fields), {"tickets": 1, **figures}, accounts or [])


def spec(**data: Any) -> ScoreSpec:
    return ScoreSpec.model_validate(data)


def test_rice_reads_figures_fields_segments_and_link_rules() -> None:
    score = spec(
        method="rice",
        inputs={
            "reach": {"figure": "accounts"},
            "impact": {"segment_weights": {"Enterprise": 3, "*": 1}},
            "confidence": {"link_rules": {"email_domain": 0.4}},
            "effort": {"field": "size", "map": {"S": 1, "M": 3}, "default": 8},
        },
    )
    accounts = [
        {"ref": "sf:1", "segment": "Enterprise", "rules": ["organization_external_id"]},
        {"ref": "sf:2", "segment": "SMB", "rules": ["email_domain", "contact_email"]},
    ]
    result = compute_scores(
        score,
        {
            "a": facts("A-1", {"accounts": 2}, accounts, size="m"),
            "b": facts("A-2", {"accounts": 2}, accounts, size=None),
        },
    )
    # impact (3 + 1) / 2 = 2; confidence (1.0 + 0.8) / 2 = 0.9
    assert result["a"].value == pytest.approx(2 * 2 * 0.9 / 3, abs=0.005)
    assert result["b"].value == pytest.approx(2 * 2 * 0.9 / 8, abs=0.005)
    assert result["b"].inputs["effort"] == {"from": "field size", "value": 8, "default": True}


def test_a_missing_input_without_default_empties_the_score_and_says_why() -> None:
    score = spec(
        method="ice",
        inputs={
            "impact": {"figure": "arr", "scale": 0.001},
            "confidence": {"value": 0.5},
            "ease": {"field": "ease"},
        },
    )
    result = compute_scores(score, {"a": facts("A-1", {"arr": 2000.0}, ease="hard")})["a"]
    assert result.value is None
    assert result.missing == ["ease: 'hard' is not a number"]
    out = compute_scores(score, {"a": facts("A-1", {"arr": 2000.0, "tickets": 0}, ease=1)})
    assert out["a"].in_scope is False  # nobody asks: out of the default scope


def test_weighted_normalises_like_jira_product_discovery() -> None:
    assert normalise({"a": 6.0, "b": 3.0, "c": 2.0}) == {
        "a": 100.0,
        "b": 50.0,
        "c": pytest.approx(33.333, abs=0.001),
    }
    assert normalise({"a": 5.0, "b": 1.0, "c": -5.0}) == {"a": 100.0, "b": 60.0, "c": 0.0}
    score = spec(
        method="weighted",
        inputs={
            "value": {"figure": "arr", "weight": 2},
            "effort": {"field": "points", "weight": -1},
        },
    )
    result = compute_scores(
        score,
        {
            "a": facts("A-1", {"arr": 100.0}, points=1),
            "b": facts("A-2", {"arr": 50.0}, points=10),
            "c": facts("A-3", {"arr": 0.0}, points=5),
        },
    )
    # arr 100/50/0 and points 10/100/50: sums 190, 0, -50 -> normalised from -50 to 190
    assert [result[k].value for k in "abc"] == [100.0, pytest.approx(20.83, abs=0.01), 0.0]
    assert result["b"].inputs["effort"]["normalised"] == 100.0


def test_a_formula_score_divides_by_zero_into_an_empty_score() -> None:
    score = spec(method="formula", formula="pipeline / effort", inputs={"effort": {"value": 0}})
    result = compute_scores(score, {"a": facts("A-1", {"pipeline": 10.0})})["a"]
    assert result.value is None
    assert result.missing[0].startswith("formula:")
