"""Compute the declared priority scores of every issue, keeping each score's inputs.

Every input is resolved per issue (a figure, an issue field, a constant, segment weights or
link-rule confidence), scaled, and replaced by its default when missing; a missing input
without a default leaves the score empty and says why. The inputs and the reasons travel with
the score as provenance (they land in the issue property with the rollup's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import simpleeval

from pmsync.sync.links.formula import Formula
from pmsync.sync.links.models import NUMERIC_ISSUE_FIGURES
from pmsync.sync.links.score_models import DEFAULT_LINK_CONFIDENCE, ScoreInput, ScoreSpec
from pmsync.sync.links.world import Entity


@dataclass(frozen=True)
class IssueFacts:
    """What a score may read about one issue."""

    issue: Entity
    figures: Mapping[str, Any]  # the rollup's figures and the voices'
    accounts: list[dict[str, Any]]  # the asking accounts (rollup provenance)


@dataclass
class ScoreResult:
    """One issue's score: its value (None: empty), inputs, and why it is empty."""

    value: float | None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    in_scope: bool = True

    def provenance(self, method: str) -> dict[str, Any]:
        document: dict[str, Any] = {"value": self.value, "method": method, "inputs": self.inputs}
        if self.missing:
            document["missing"] = self.missing
        return document


def compute_scores(spec: ScoreSpec, facts: Mapping[str, IssueFacts]) -> dict[str, ScoreResult]:
    """issue ref -> the score's result, for every issue in `facts`."""
    formula = (
        Formula.compile(spec.formula, [*NUMERIC_ISSUE_FIGURES, *spec.inputs])
        if spec.formula
        else None
    )
    results: dict[str, ScoreResult] = {}
    resolved: dict[str, dict[str, float]] = {}
    for issue_ref, fact in facts.items():
        if not in_scope(spec, fact):
            results[issue_ref] = ScoreResult(None, in_scope=False)
            continue
        result = ScoreResult(None)
        values = _resolve_inputs(spec, fact, result)
        if formula is not None:
            values = {**_named_figures(formula, fact, result), **values}
        results[issue_ref] = result
        if not result.missing:
            resolved[issue_ref] = values
    if spec.method == "weighted":
        _weighted(spec, resolved, results)
    else:
        for issue_ref, values in resolved.items():
            _combine(spec, formula, values, results[issue_ref])
    return results


def in_scope(spec: ScoreSpec, fact: IssueFacts) -> bool:
    issue = fact.issue
    if spec.projects and issue.get("project") not in spec.projects:
        return False
    if spec.status_categories and issue.get("status_category") not in spec.status_categories:
        return False
    if spec.scope == "all":
        return True
    return bool(fact.figures.get("tickets") or fact.figures.get("pipeline_opportunities"))


# ---- inputs -----------------------------------------------------------------------------------


def _resolve_inputs(spec: ScoreSpec, fact: IssueFacts, result: ScoreResult) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, declared in spec.inputs.items():
        raw, problem = _raw(declared, fact)
        record: dict[str, Any] = {"from": declared.source}
        if raw is not None and problem is None:
            value = raw * declared.scale
        elif declared.default is not None:
            value = declared.default
            record["default"] = True
        else:
            result.missing.append(f"{name}: {problem or 'missing'}")
            record["value"] = None
            result.inputs[name] = record
            continue
        record["value"] = _rounded(value)
        result.inputs[name] = record
        values[name] = value
    return values


def _raw(declared: ScoreInput, fact: IssueFacts) -> tuple[float | None, str | None]:
    """The input's unscaled value, or None and what is missing."""
    if declared.value is not None:
        return declared.value, None
    if declared.figure is not None:
        return _number(fact.figures.get(declared.figure), declared, f"{declared.figure} is empty")
    if declared.field is not None:
        return _number(
            fact.issue.fields.get(declared.field), declared, f"field {declared.field} is empty"
        )
    if declared.segment_weights is not None:
        return _segment_weight(declared.segment_weights, fact.accounts)
    assert declared.link_rules is not None
    return _link_confidence(declared.link_rules, fact.accounts)


def _number(value: Any, declared: ScoreInput, empty: str) -> tuple[float | None, str | None]:
    if value is None or value == "" or isinstance(value, bool):
        return None, empty
    if isinstance(value, int | float):
        return float(value), None
    text = str(value).strip()
    if declared.map is not None:
        table = {k.lower(): v for k, v in declared.map.items()}
        if text.lower() in table:
            return table[text.lower()], None
    try:
        return float(text.replace(",", "")), None
    except ValueError:
        known = f" (map: {', '.join(declared.map)})" if declared.map else ""
        return None, f"'{text}' is not a number{known}"


def _segment_weight(
    weights: Mapping[str, float], accounts: list[dict[str, Any]]
) -> tuple[float | None, str | None]:
    if not accounts:
        return None, "no asking account"
    other = weights.get("*", 1.0)
    found = [weights.get(str(a.get("segment") or ""), other) for a in accounts]
    return sum(found) / len(found), None


def _link_confidence(
    rules: Mapping[str, float], accounts: list[dict[str, Any]]
) -> tuple[float | None, str | None]:
    if not accounts:
        return None, "no asking account"
    table = {**DEFAULT_LINK_CONFIDENCE, **rules}
    strongest = [
        max((table.get(r, 1.0) for r in a.get("rules", [])), default=1.0) for a in accounts
    ]
    return sum(strongest) / len(strongest), None


def _named_figures(formula: Formula, fact: IssueFacts, result: ScoreResult) -> dict[str, float]:
    """Figures a formula names directly (inputs of the same name win)."""
    values: dict[str, float] = {}
    for name in sorted(formula.names):
        if name in result.inputs:
            continue
        value = fact.figures.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            result.missing.append(f"{name}: figure is empty")
            continue
        values[name] = float(value)
        result.inputs[name] = {"from": f"figure {name}", "value": _rounded(float(value))}
    return values


# ---- methods ----------------------------------------------------------------------------------


def _combine(
    spec: ScoreSpec, formula: Formula | None, values: Mapping[str, float], result: ScoreResult
) -> None:
    try:
        if spec.method == "rice":
            if values["effort"] == 0:
                result.missing.append("effort: is 0")
                return
            raw = values["reach"] * values["impact"] * values["confidence"] / values["effort"]
        elif spec.method == "ice":
            raw = values["impact"] * values["confidence"] * values["ease"]
        else:
            assert formula is not None
            raw = formula.evaluate(values)
    except (ZeroDivisionError, ValueError, OverflowError, TypeError) as exc:
        result.missing.append(f"formula: {exc}")
        return
    except simpleeval.InvalidExpression as exc:
        result.missing.append(f"formula: {exc}")
        return
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        result.missing.append(f"formula: the result {raw!r} is not a number")
        return
    result.value = round(float(raw), spec.decimals)


def _weighted(
    spec: ScoreSpec, resolved: Mapping[str, dict[str, float]], results: dict[str, ScoreResult]
) -> None:
    """Each input normalised 0-100 across the issues scored, weighted, summed, normalised."""
    sums = dict.fromkeys(resolved, 0.0)
    for name, declared in spec.inputs.items():
        column = {issue: values[name] for issue, values in resolved.items()}
        for issue, normal in normalise(column).items():
            sums[issue] += normal * declared.weight
            results[issue].inputs[name]["normalised"] = _rounded(normal)
    for issue, value in normalise(sums).items():
        results[issue].value = round(value, spec.decimals)


def normalise(column: Mapping[str, float]) -> dict[str, float]:
    """0-100 relative to the others: 0 is the floor (or the lowest value when one is
    negative), the highest value is 100."""
    if not column:
        return {}
    low = min(0.0, *column.values())
    high = max(column.values())
    if high == low:
        return dict.fromkeys(column, 0.0)
    return {key: 100.0 * (value - low) / (high - low) for key, value in column.items()}


def _rounded(value: float) -> float:
    return round(value, 6)
