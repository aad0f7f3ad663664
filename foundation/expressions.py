"""Compile JMESPath expressions and check, at load time, what jmespath leaves to the first search.

jmespath parses `subject | foo(@)` happily and fails only when a record is searched: every
record then goes to dead letters. Function names and argument counts are known without any
record, so they are checked here with the parse, and the reason is one short line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError
from jmespath.functions import Functions
from jmespath.parser import ParsedResult

from pmsync.validation import did_you_mean

FUNCTIONS: Mapping[str, Any] = Functions().FUNCTION_TABLE


class ExpressionError(ValueError):
    """An expression that cannot run: the message says where and why, without the expression."""


def compile_expression(expression: str) -> ParsedResult:
    """Parse `expression` and check its functions; ExpressionError says what is wrong."""
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ExpressionError(parse_problem(exc)) from None
    except RecursionError:
        raise ExpressionError("nested too deeply") from None
    problem = function_problem(compiled.parsed)
    if problem:
        raise ExpressionError(problem)
    return compiled


def parse_problem(exc: JMESPathError) -> str:
    """Where and why an expression does not parse, once (jmespath's own text repeats the
    expression over three lines)."""
    reason = str(getattr(exc, "msg", None) or "does not parse")
    if isinstance(exc, IncompleteExpressionError):
        reason = "it ends too early"
    elif isinstance(exc, LexerError):
        reason = str(exc.message)
    reason = reason.replace(": ", " ").replace("got eof", "got the end")
    position = getattr(exc, "lex_position", None)
    where = f"column {position + 1}: " if isinstance(position, int) else ""
    return where + reason[:1].lower() + reason[1:]


def function_problem(node: Mapping[str, Any]) -> str | None:
    """The first call to a function jmespath does not have, or with the wrong argument count."""
    pending = [node]
    while pending:
        current = pending.pop()
        if current.get("type") == "function_expression":
            problem = _call_problem(str(current["value"]), len(current["children"]))
            if problem:
                return problem
        pending.extend(c for c in reversed(current.get("children", [])) if isinstance(c, dict))
    return None


def _call_problem(name: str, given: int) -> str | None:
    entry = FUNCTIONS.get(name)
    if entry is None:
        hint = did_you_mean(name, FUNCTIONS) or f" (functions: {', '.join(sorted(FUNCTIONS))})"
        return f"unknown function {name}(){hint}"
    signature = entry["signature"]
    wanted = len(signature)
    if signature and signature[-1].get("variadic"):
        if given < wanted:
            return f"{name}() takes at least {_arguments(wanted)}, not {given}"
    elif given != wanted:
        return f"{name}() takes {_arguments(wanted)}, not {given}"
    return None


def _arguments(count: int) -> str:
    return f"{count} argument{'' if count == 1 else 's'}"
