"""Custom score formulas: arithmetic over named figures, parsed and evaluated by simpleeval.

simpleeval walks Python's expression grammar with an allow-list of node types, operators and
functions, and caps exponent and string sizes, so a formula typed by product ops can neither
reach Python objects (no attributes, no imports, no lambdas) nor hang the daemon. pmsync never
passes a formula to `eval`.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import simpleeval

from pmsync.validation import did_you_mean


def _log(value: float, base: float = math.e) -> float:
    return math.log(value, base)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "sqrt": math.sqrt,
    "log": _log,
    "log10": math.log10,
}


class FormulaError(ValueError):
    """The formula does not parse, or names what it may not."""


@dataclass(frozen=True)
class Formula:
    """A checked expression and the names it reads."""

    text: str
    names: frozenset[str]
    _tree: Any

    @classmethod
    def compile(cls, text: str, available: Collection[str]) -> Formula:
        """Parse `text`; FormulaError names an unknown figure (with the figures available),
        an unknown function or a construct that is not arithmetic."""
        try:
            tree = simpleeval.SimpleEval.parse(text)
        except SyntaxError as exc:
            raise FormulaError(f"does not parse: {exc.msg}") from None
        names, functions = _names(tree)
        unknown = sorted(names - set(available) - set(FUNCTIONS))
        if unknown:
            raise FormulaError(
                f"names unknown figure '{unknown[0]}'{did_you_mean(unknown[0], available)} "
                f"(figures available: {', '.join(sorted(available))})"
            )
        strange = sorted(functions - set(FUNCTIONS))
        if strange:
            raise FormulaError(
                f"calls unknown function '{strange[0]}' (functions: {', '.join(FUNCTIONS)})"
            )
        formula = cls(text, frozenset(names), tree)
        formula._dry_run()
        return formula

    def _dry_run(self) -> None:
        """Evaluate once with every name = 1, to refuse constructs simpleeval does not allow."""
        try:
            self.evaluate(dict.fromkeys(self.names, 1.0))
        except (ZeroDivisionError, ValueError, OverflowError):
            return  # arithmetic on the stand-in values; real values decide
        except simpleeval.InvalidExpression as exc:
            raise FormulaError(str(exc)) from None
        except TypeError as exc:
            raise FormulaError(f"is not arithmetic: {exc}") from None

    def evaluate(self, values: Mapping[str, float]) -> Any:
        """The formula's value; simpleeval's and arithmetic errors propagate."""
        evaluator = simpleeval.SimpleEval(functions=dict(FUNCTIONS), names=dict(values))
        return evaluator.eval(self.text, previously_parsed=self._tree)


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names read as values, and names called as functions."""
    called = {
        id(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    names: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (functions if id(node) in called else names).add(node.id)
    return names, functions
