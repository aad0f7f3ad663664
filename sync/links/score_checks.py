"""Check a declared score against what exists, so a typo fails `check-config`, not a cycle.

Each problem names the file and the TOML path, and lists what is available: the numeric
figures for a figure or a formula, the issue fields for a field, the rules for link_rules.
"""

from __future__ import annotations

from collections.abc import Collection

from pmsync.errors import Problem
from pmsync.sync.links.formula import Formula, FormulaError
from pmsync.sync.links.models import DEFAULT_ACCOUNT_RULES, FIGURES, NUMERIC_ISSUE_FIGURES
from pmsync.sync.links.score_models import NAME, ScoreInput, ScoreSpec
from pmsync.validation import did_you_mean

RESERVED = frozenset({"scores", "issue_key", "opportunities", "detractors"})


def check_score(
    name: str,
    file: str,
    spec: ScoreSpec,
    rollups: Collection[str],
    issue_fields: Collection[str],
) -> list[Problem]:
    """Every problem of one `[score.NAME]`."""
    where = f"score.{name}"
    problems = _name_problems(name, file, where)
    if spec.rollup not in rollups:
        problems.append(
            Problem(
                file,
                f"{where}.rollup",
                f"no rollup '{spec.rollup}'{did_you_mean(spec.rollup, rollups)} "
                f"(rollups: {', '.join(rollups)})",
            )
        )
    for input_name, declared in spec.inputs.items():
        problems.extend(
            _input_problems(
                file, f"{where}.inputs.{input_name}", input_name, declared, issue_fields
            )
        )
    if spec.formula is not None:
        try:
            Formula.compile(spec.formula, [*NUMERIC_ISSUE_FIGURES, *spec.inputs])
        except FormulaError as exc:
            problems.append(Problem(file, f"{where}.formula", f"the formula {exc}"))
    return problems


def _name_problems(name: str, file: str, where: str) -> list[Problem]:
    if not NAME.fullmatch(name):
        return [Problem(file, where, "a score name is a plain name (letters, digits, _)")]
    if name in FIGURES["issue"] or name in RESERVED:
        return [Problem(file, where, f"'{name}' is already a figure; name the score otherwise")]
    return []


def _input_problems(
    file: str, where: str, name: str, declared: ScoreInput, issue_fields: Collection[str]
) -> list[Problem]:
    problems: list[Problem] = []
    if name in NUMERIC_ISSUE_FIGURES:
        problems.append(
            Problem(file, where, f"input '{name}' has a figure's name; name the input otherwise")
        )
    if declared.figure is not None and declared.figure not in NUMERIC_ISSUE_FIGURES:
        problems.append(
            Problem(
                file,
                f"{where}.figure",
                f"no numeric figure '{declared.figure}'"
                f"{did_you_mean(declared.figure, NUMERIC_ISSUE_FIGURES)} "
                f"(figures available: {', '.join(NUMERIC_ISSUE_FIGURES)})",
            )
        )
    if declared.field is not None and declared.field not in issue_fields:
        problems.append(
            Problem(
                file,
                f"{where}.field",
                f"no issue field '{declared.field}'{did_you_mean(declared.field, issue_fields)} "
                f"(map it in the issue mapping, under fields or extra_fields; fields: "
                f"{', '.join(sorted(issue_fields))})",
            )
        )
    for rule in sorted(set(declared.link_rules or {}) - set(DEFAULT_ACCOUNT_RULES)):
        problems.append(
            Problem(
                file,
                f"{where}.link_rules.{rule}",
                f"no ticket -> account rule '{rule}'{did_you_mean(rule, DEFAULT_ACCOUNT_RULES)} "
                f"(rules: {', '.join(DEFAULT_ACCOUNT_RULES)})",
            )
        )
    return problems
