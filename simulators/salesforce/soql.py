"""A parser for the subset of SOQL that pmsync (and a human poking at the simulator) sends.

Supported: SELECT field, Rel.Field, ... FROM Object [WHERE condition] [ORDER BY field [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n]. Conditions combine comparisons (=, !=, <>, <, <=, >, >=) and
IN / NOT IN lists with AND, OR, NOT and parentheses. Literals: 'strings' with backslash escapes,
numbers, true/false/null, dateTime literals (YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm)) and
date literals (YYYY-MM-DD), unquoted as SOQL requires. Keywords are case-insensitive.
Anything else is a MALFORMED_QUERY, as Salesforce answers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

Row = Callable[[str], Any]  # field path -> comparable value


class SoqlError(ValueError):
    """The query does not parse; the message reads like Salesforce's MALFORMED_QUERY."""


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" | "OR"
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    part: Expr


Expr = Comparison | InList | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool = False
    nulls_last: bool | None = None


@dataclass
class Query:
    fields: list[str]
    object_name: str
    where: Expr | None = None
    order_by: list[OrderKey] = field(default_factory=list)
    limit: int | None = None

    def referenced_fields(self) -> set[str]:
        """Every field path the query names (select list, conditions, ordering)."""
        found = set(self.fields) | {k.field for k in self.order_by}
        if self.where is not None:
            found |= _expr_fields(self.where)
        return found


def _expr_fields(expr: Expr) -> set[str]:
    if isinstance(expr, Comparison | InList):
        return {expr.field}
    if isinstance(expr, Not):
        return _expr_fields(expr.part)
    found: set[str] = set()
    for part in expr.parts:
        found |= _expr_fields(part)
    return found


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    value: Any = None


def _unescape(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt not in _ESCAPES:
                raise SoqlError(f"Invalid string literal: illegal escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def parse_datetime_literal(text: str) -> datetime:
    """A SOQL dateTime literal as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            snippet = text[position : position + 20]
            raise SoqlError(f"unexpected token: '{snippet}'")
        position = match.end()
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(_Token("literal", raw, _unescape(raw[1:-1])))
        elif kind == "number":
            tokens.append(_Token("literal", raw, float(raw) if "." in raw else int(raw)))
        elif kind == "datetime":
            tokens.append(_Token("literal", raw, parse_datetime_literal(raw)))
        elif kind == "date":
            tokens.append(_Token("literal", raw, date.fromisoformat(raw)))
        elif kind == "name" and raw.upper() in {"TRUE", "FALSE", "NULL"}:
            tokens.append(_Token("literal", raw, {"TRUE": True, "FALSE": False}.get(raw.upper())))
        elif kind == "name" and raw.upper() in _KEYWORDS:
            tokens.append(_Token("keyword", raw.upper()))
        else:
            tokens.append(_Token(kind, raw))
    return tokens


class _Parser:
    def __init__(self, tokens: Sequence[_Token]) -> None:
        self.tokens = list(tokens)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SoqlError("unexpected end of query")
        self.index += 1
        return token

    def accept_keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "keyword" and token.text in words:
            self.index += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.accept_keyword(word):
            token = self.peek()
            got = token.text if token else "end of query"
            raise SoqlError(f"unexpected token: '{got}', expecting {word}")

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            raise SoqlError(f"unexpected token: '{token.text}', expecting '{char}'")

    def name(self) -> str:
        token = self.take()
        if token.kind != "name":
            raise SoqlError(f"unexpected token: '{token.text}'")
        return token.text

    def literal(self) -> Any:
        token = self.take()
        if token.kind != "literal":
            raise SoqlError(f"unexpected token: '{token.text}', expecting a value")
        return token.value

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        fields = [self.name()]
        while self._accept_punct(","):
            fields.append(self.name())
        self.expect_keyword("FROM")
        query = Query(fields=fields, object_name=self.name())
        if self.accept_keyword("WHERE"):
            query.where = self.disjunction()
        if self.accept_keyword("ORDER"):
            self.expect_keyword("BY")
            query.order_by.append(self.order_key())
            while self._accept_punct(","):
                query.order_by.append(self.order_key())
        if self.accept_keyword("LIMIT"):
            value = self.literal()
            if not isinstance(value, int) or value < 0:
                raise SoqlError("LIMIT must be a non-negative integer")
            query.limit = value
        if self.peek() is not None:
            raise SoqlError(f"unexpected token: '{self.take().text}'")
        return query

    def _accept_punct(self, char: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.index += 1
            return True
        return False

    def order_key(self) -> OrderKey:
        name = self.name()
        descending = False
        if self.accept_keyword("DESC"):
            descending = True
        else:
            self.accept_keyword("ASC")
        nulls_last: bool | None = None
        if self.accept_keyword("NULLS"):
            if self.accept_keyword("FIRST"):
                nulls_last = False
            else:
                self.expect_keyword("LAST")
                nulls_last = True
        return OrderKey(name, descending, nulls_last)

    def disjunction(self) -> Expr:
        parts = [self.conjunction()]
        while self.accept_keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self) -> Expr:
        parts = [self.negation()]
        while self.accept_keyword("AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def negation(self) -> Expr:
        if self.accept_keyword("NOT"):
            return Not(self.negation())
        if self._accept_punct("("):
            inner = self.disjunction()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Expr:
        name = self.name()
        negate = self.accept_keyword("NOT")
        if self.accept_keyword("IN"):
            self.expect_punct("(")
            values = [self.literal()]
            while self._accept_punct(","):
                values.append(self.literal())
            self.expect_punct(")")
            return InList(name, tuple(values), negate)
        if negate:
            raise SoqlError("unexpected token: 'NOT', expecting IN")
        token = self.take()
        if token.kind != "op":
            raise SoqlError(f"unexpected token: '{token.text}', expecting an operator")
        op = "!=" if token.text == "<>" else token.text
        return Comparison(name, op, self.literal())


def parse(text: str) -> Query:
    """Parse a SOQL query; SoqlError when it is outside the supported subset."""
    return _Parser(tokenize(text)).query()


# ---- evaluation ----------------------------------------------------------------------------


def comparable(value: Any) -> Any:
    """Literals and stored values in one comparable form (datetimes as epoch seconds)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    return value


_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False  # SOQL: null is neither less nor greater than anything
    try:
        return bool(_ORDERING[op](left, right))
    except TypeError:
        return False


def evaluate(expr: Expr, row: Row) -> bool:
    """Whether a row (a function from field path to comparable value) matches."""
    if isinstance(expr, Comparison):
        return _compare(row(expr.field), expr.op, comparable(expr.value))
    if isinstance(expr, InList):
        found = row(expr.field) in {comparable(v) for v in expr.values}
        return found != expr.negate
    if isinstance(expr, Not):
        return not evaluate(expr.part, row)
    if expr.op == "AND":
        return all(evaluate(p, row) for p in expr.parts)
    return any(evaluate(p, row) for p in expr.parts)
