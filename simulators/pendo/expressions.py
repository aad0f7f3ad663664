"""The subset of Pendo's aggregation expression language the simulator evaluates in `filter`.

Supported: dotted field paths (metadata.auto.lastupdated), double-quoted strings with backslash
escapes, numbers, true / false / null, the comparisons == != < <= > >=, the logic operators
&& || !, and parentheses. A comparison between values of different types (or with a missing
field) is false, except that `!=` is then true. Anything else is a syntax error, which the
simulator answers with 400 as Pendo does for a malformed pipeline.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Operand = Callable[[Row], Any]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()])
      | (?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CONSTANTS = {"true": True, "false": False, "null": None}


class ExpressionError(ValueError):
    """The expression is not in the supported subset."""


def field_value(row: Row, path: str) -> Any:
    """A dotted path into a row; None when any step is missing."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def compile_filter(text: str) -> Predicate:
    """Compile a filter expression once; apply the result to each row."""
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    predicate = parser.parse_or()
    if parser.position != len(tokens):
        raise ExpressionError(f"unexpected '{tokens[parser.position][1]}' in filter: {text}")
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot read filter at offset {position}: {text}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ExpressionError(f"filter ends too early: {self.text}")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self._peek() == "||":
            self._take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self._peek() == "&&":
            self._take()
            parts.append(self.parse_not())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def parse_not(self) -> Predicate:
        if self._peek() == "!":
            self._take()
            inner = self.parse_not()
            return lambda row: not inner(row)
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        if self._peek() == "(":
            self._take()
            inner = self.parse_or()
            if self._take()[1] != ")":
                raise ExpressionError(f"missing ')' in filter: {self.text}")
            return inner
        left = self.parse_operand()
        operator = self._peek()
        if operator not in _COMPARE:
            return lambda row: bool(left(row))
        self._take()
        right = self.parse_operand()
        compare = _COMPARE[operator]

        def predicate(row: Row) -> bool:
            a, b = left(row), right(row)
            if operator in ("==", "!="):
                return bool(compare(a, b))
            if a is None or b is None or _kind(a) != _kind(b):
                return False
            return bool(compare(a, b))

        return predicate

    def parse_operand(self) -> Operand:
        kind, text = self._take()
        if kind == "string":
            value: Any = json.loads(text)
            return lambda _row: value
        if kind == "number":
            number = float(text) if "." in text else int(text)
            return lambda _row: number
        if kind == "name":
            if text in _CONSTANTS:
                constant = _CONSTANTS[text]
                return lambda _row: constant
            return lambda row: field_value(row, text)
        raise ExpressionError(f"unexpected '{text}' in filter: {self.text}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__
