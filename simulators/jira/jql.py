"""A JQL subset: enough for what pmsync sends and for typical project/filter clauses.

Grammar: `[expr] [ORDER BY field [ASC|DESC], ...]`, where expr combines clauses with AND, OR,
NOT and parentheses, and a clause is `field op operand` with op one of = != > >= < <= IN, NOT IN,
IS, IS NOT, ~. Operands are numbers, words, quoted strings, lists `(a, b)`, EMPTY and NULL.

Date fields (updated, created, resolved) compare as Jira does:
  * a bare number is epoch milliseconds;
  * a literal `"yyyy/MM/dd HH:mm"`, `"yyyy-MM-dd HH:mm"`, `"yyyy/MM/dd"` or `"yyyy-MM-dd"` is read
    in the searching user's profile time zone, at minute precision (seconds are rejected);
  * a relative period such as `-5m`, `-2h`, `-1d`, `-1w` counts from now.
`key`, `id`, `issue` and `issuekey` are one field, as in Jira: ordering by any of them sorts by
project key, then issue number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

Issue = dict[str, Any]
Predicate = Callable[[Issue], bool]
SortKey = tuple[Any, ...]


class JqlError(ValueError):
    """The query does not parse or names something Jira would reject; the text is Jira's."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>!=|>=|<=|!~|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z0-9_.\-\[\]/:+]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_PERIOD = re.compile(r"^([+-]?)(\d+)([wdhm])$")
_PERIOD_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000}
DATE_FIELDS = {
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
    "resolved": "resolutiondate",
    "resolutiondate": "resolutiondate",
}
KEY_FIELDS = {"key", "id", "issue", "issuekey"}


@dataclass(frozen=True)
class Token:
    kind: str  # string | op | punct | word | keyword
    text: str


@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Query:
    """A parsed query: a filter (None: every issue) and the sort."""

    where: Predicate | None
    order: tuple[tuple[str, bool], ...]  # (field, descending)
    bounded: bool

    def raw_sort(self, issue: Issue, context: Context) -> list[Any]:
        """The sort values of an issue (JSON-able, for page tokens), its id last."""
        values = [context.sort_value(issue, field) for field, _desc in self.order or _DEFAULT]
        return [*values, int(issue["id"])]

    def wrap(self, raw: list[Any]) -> SortKey:
        """A comparable key from raw sort values: None last, DESC fields reversed."""
        order = self.order or _DEFAULT
        parts: list[Any] = [
            _Desc(_tuples(value)) if descending else _Asc(_tuples(value))
            for value, (_field, descending) in zip(raw[:-1], order, strict=True)
        ]
        return (*parts, int(raw[-1]))


_DEFAULT = (("key", False),)


def _tuples(value: Any) -> Any:
    """JSON round trips turn tuples into lists; sort keys need them back as tuples."""
    return tuple(value) if isinstance(value, list) else value


class _Asc:
    """Sort wrapper that puts None last, as Jira sorts empty values last ascending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _key(self) -> tuple[bool, Any]:
        return (self.value is None, self.value if self.value is not None else 0)

    def __lt__(self, other: _Asc) -> bool:
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Asc) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class _Desc(_Asc):
    def __lt__(self, other: _Asc) -> bool:
        return other._key() < self._key()


class Context:
    """What evaluation needs from the simulator: field values, the user's zone, now."""

    def __init__(
        self,
        *,
        zone: ZoneInfo,
        now_ms: int,
        field_value: Callable[[Issue, str], Any],
        custom_ids: dict[str, str],
    ) -> None:
        self.zone = zone
        self.now_ms = now_ms
        self.field_value = field_value
        self.custom_ids = custom_ids  # lower-case display name or cf[n] -> customfield_n

    def check_sort_field(self, field: str) -> None:
        name = field.lower()
        known = name in KEY_FIELDS or name in DATE_FIELDS or name in self.custom_ids
        if not known and name not in ("priority", "status", "summary", "project"):
            raise JqlError(
                f"Field '{field}' does not exist or you do not have permission to view it."
            )

    def sort_value(self, issue: Issue, field: str) -> Any:
        name = field.lower()
        if name in KEY_FIELDS:
            project, _, number = str(issue["key"]).partition("-")
            return (project, int(number))
        if name in DATE_FIELDS:
            return issue.get(f"_{DATE_FIELDS[name]}_ms")
        if name in ("priority", "status", "summary", "project"):
            value = self.field_value(issue, name)
            if isinstance(value, dict):
                value = value.get("key") if name == "project" else value.get("name")
            return value.lower() if isinstance(value, str) else value
        field_id = self.custom_ids.get(name)
        if field_id is not None:
            return self.field_value(issue, field_id)
        raise JqlError(f"Field '{field}' does not exist or you do not have permission to view it.")

    def date_ms(self, field: str, value: Value) -> int:
        text = value.text.strip()
        if not value.quoted and re.fullmatch(r"-?\d+", text):
            return int(text)
        period = _PERIOD.match(text.replace(" ", ""))
        if period:
            sign = -1 if period.group(1) == "-" else 1
            return self.now_ms + sign * int(period.group(2)) * _PERIOD_MS[period.group(3)]
        for fmt in _DATE_FORMATS:
            try:
                local = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return int(local.replace(tzinfo=self.zone).timestamp() * 1000)
        raise JqlError(
            f"Date value '{text}' for field '{field}' is invalid. Valid formats include: "
            "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
            "format e.g. '-5d', '4w 2d'."
        )


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JqlError(
                f"Error in the JQL Query: The character '{text[position:].strip()[:1]}' is a "
                f"reserved JQL character (at position {position})."
            )
        position = match.end()
        kind = str(match.lastgroup)
        value = match.group(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            tokens.append(Token("keyword", value.lower()))
        else:
            tokens.append(Token(kind, value))
    return tokens


class Parser:
    """Recursive descent over the tokens; builds predicates bound to a Context."""

    def __init__(self, text: str, context: Context) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.context = context

    def parse(self) -> Query:
        where: Predicate | None = None
        if self._peek() is not None and not self._at_keyword("order"):
            where = self._or()
        order: list[tuple[str, bool]] = []
        if self._at_keyword("order"):
            self._next()
            self._expect_keyword("by")
            while True:
                field = self._next_field()
                descending = False
                if self._at_keyword("asc") or self._at_keyword("desc"):
                    descending = self._next().text == "desc"
                self.context.check_sort_field(field)
                order.append((field, descending))
                if not self._at_punct(","):
                    break
                self._next()
        if self._peek() is not None:
            raise JqlError(
                f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got "
                f"'{self._peek().text}'."  # type: ignore[union-attr]
            )
        return Query(where=where, order=tuple(order), bounded=where is not None)

    # ---- tokens --------------------------------------------------------------------------

    def _peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self) -> Token:
        token = self._peek()
        if token is None:
            raise JqlError("Error in the JQL Query: The query ended unexpectedly.")
        self.index += 1
        return token

    def _at_keyword(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "keyword" and token.text == word

    def _at_punct(self, char: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "punct" and token.text == char

    def _expect_keyword(self, word: str) -> None:
        token = self._next()
        if token.kind != "keyword" or token.text != word:
            raise JqlError(
                f"Error in the JQL Query: Expecting '{word.upper()}' before '{token.text}'."
            )

    def _next_field(self) -> str:
        token = self._next()
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind != "word":
            raise JqlError(
                f"Error in the JQL Query: Expecting a field name but got '{token.text}'."
            )
        return token.text

    # ---- grammar -------------------------------------------------------------------------

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._at_keyword("or"):
            self._next()
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: any(p(issue) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._at_keyword("and"):
            self._next()
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda issue: all(p(issue) for p in parts)

    def _not(self) -> Predicate:
        if self._at_keyword("not"):
            self._next()
            inner = self._not()
            return lambda issue: not inner(issue)
        if self._at_punct("("):
            self._next()
            inner = self._or()
            if not self._at_punct(")"):
                raise JqlError("Error in the JQL Query: Expecting ')'.")
            self._next()
            return inner
        return self._clause()

    def _clause(self) -> Predicate:
        field = self._next_field()
        token = self._next()
        if token.kind == "op":
            op = token.text
        elif token.kind == "keyword" and token.text == "in":
            op = "in"
        elif token.kind == "keyword" and token.text == "not":
            self._expect_keyword("in")
            op = "not in"
        elif token.kind == "keyword" and token.text == "is":
            op = "is"
            if self._at_keyword("not"):
                self._next()
                op = "is not"
        else:
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{token.text}'.")
        operand = self._operand(op)
        return build_clause(field, op, operand, self.context)

    def _operand(self, op: str) -> list[Value] | None:
        if op in ("is", "is not"):
            token = self._next()
            if token.kind != "keyword" or token.text not in ("empty", "null"):
                raise JqlError("Error in the JQL Query: Expecting EMPTY or NULL after IS.")
            return None
        if op in ("in", "not in"):
            if not self._at_punct("("):
                raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
            self._next()
            values = [self._value()]
            while self._at_punct(","):
                self._next()
                values.append(self._value())
            if not self._at_punct(")"):
                raise JqlError("Error in the JQL Query: Expecting ')'.")
            self._next()
            return values
        if self._at_keyword("empty") or self._at_keyword("null"):
            self._next()
            return None
        return [self._value()]

    def _value(self) -> Value:
        token = self._next()
        if token.kind == "string":
            return Value(_unquote(token.text), quoted=True)
        if token.kind == "word":
            return Value(token.text, quoted=False)
        raise JqlError(f"Error in the JQL Query: Expecting a value but got '{token.text}'.")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def build_clause(  # noqa: PLR0911 - one predicate per operator family
    field: str, op: str, values: list[Value] | None, context: Context
) -> Predicate:
    name = field.lower()
    if name in DATE_FIELDS:
        return _date_clause(field, DATE_FIELDS[name], op, values, context)
    if name in KEY_FIELDS:
        return _key_clause(op, values)
    getter = _getter(field, context)
    if values is None:
        empty = op in ("is", "=")
        return lambda issue: _is_empty(getter(issue)) == empty
    wanted = {v.text.lower() for v in values}
    if op in ("=", "in"):
        return lambda issue: bool(_texts(getter(issue)) & wanted)
    if op in ("!=", "not in"):
        return lambda issue: not _is_empty(getter(issue)) and not (_texts(getter(issue)) & wanted)
    if op in ("~", "!~"):
        needle = values[0].text.lower()
        found = op == "~"
        return lambda issue: (needle in " ".join(_texts(getter(issue)))) == found
    number = _number(values[0].text, field)
    compare = _COMPARE[op]
    return lambda issue: (
        _numeric(getter(issue)) is not None and compare(_numeric(getter(issue)), number)
    )


def _getter(field: str, context: Context) -> Callable[[Issue], Any]:
    name = field.lower()
    simple = {
        "project": "project",
        "status": "status",
        "statuscategory": "statusCategory",
        "labels": "labels",
        "component": "components",
        "fixversion": "fixVersions",
        "issuetype": "issuetype",
        "type": "issuetype",
        "resolution": "resolution",
        "priority": "priority",
        "summary": "summary",
        "text": "summary",
    }
    if name in simple:
        key = simple[name]
        return lambda issue: context.field_value(issue, key)
    field_id = context.custom_ids.get(name)
    if field_id is not None:
        return lambda issue: context.field_value(issue, field_id)
    raise JqlError(f"Field '{field}' does not exist or you do not have permission to view it.")


def _texts(value: Any) -> set[str]:
    """Every text a value can be matched by (names, keys, ids), lower-cased."""
    if value is None:
        return set()
    if isinstance(value, list):
        out: set[str] = set()
        for item in value:
            out |= _texts(item)
        return out
    if isinstance(value, dict):
        return {str(value[k]).lower() for k in ("name", "key", "id", "value") if value.get(k)}
    return {str(value).lower()}


def _is_empty(value: Any) -> bool:
    return value is None or value in ([], "")


def _number(text: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise JqlError(f"The value '{text}' is not a valid number for field '{field}'.") from None


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _date_clause(
    field: str, stored: str, op: str, values: list[Value] | None, context: Context
) -> Predicate:
    attribute = f"_{stored}_ms"
    if values is None:
        empty = op in ("is", "=")
        return lambda issue: (issue.get(attribute) is None) == empty
    if op in ("in", "not in"):
        instants = {context.date_ms(field, v) for v in values}
        inside = op == "in"
        return lambda issue: (issue.get(attribute) in instants) == inside
    if op not in _COMPARE:
        raise JqlError(f"The operator '{op}' is not supported by the '{field}' field.")
    instant = context.date_ms(field, values[0])
    compare = _COMPARE[op]
    return lambda issue: issue.get(attribute) is not None and compare(issue[attribute], instant)


def _key_clause(op: str, values: list[Value] | None) -> Predicate:
    if values is None:
        return lambda issue: op in ("is not", "!=")
    wanted = [_key_value(v.text) for v in values]
    if op in ("=", "in"):
        return lambda issue: _key_of(issue) in wanted or int(issue["id"]) in wanted
    if op in ("!=", "not in"):
        return lambda issue: _key_of(issue) not in wanted and int(issue["id"]) not in wanted
    if op not in _COMPARE:
        raise JqlError(f"The operator '{op}' is not supported by the 'key' field.")
    target = wanted[0]
    compare = _COMPARE[op]
    if isinstance(target, int):
        return lambda issue: compare(int(issue["id"]), target)
    return lambda issue: _key_of(issue)[0] == target[0] and compare(_key_of(issue), target)


def _key_value(text: str) -> Any:
    if re.fullmatch(r"\d+", text):
        return int(text)
    project, _, number = text.upper().partition("-")
    if not number.isdigit():
        raise JqlError(f"The issue key '{text}' for field 'key' is invalid.")
    return (project, int(number))


def _key_of(issue: Issue) -> tuple[str, int]:
    project, _, number = str(issue["key"]).partition("-")
    return (project.upper(), int(number))


def parse(text: str, context: Context) -> Query:
    """Parse a JQL query; JqlError carries the message Jira would answer with."""
    return Parser(text, context).parse()
