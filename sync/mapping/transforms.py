"""Named transforms a mapping field can apply, in order, to the value its path selects.

A transform is written as its name ("lower") or as a table whose one transform key carries the
argument and whose other keys are that transform's options ({ map = { urgent = "P1" },
fallback = "P3" }). Each is built once, at load time, so bad arguments are found before a sync.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from pmsync.validation import did_you_mean

Fn = Callable[[Any], Any]


class TransformError(ValueError):
    """A transform spec is wrong (unknown name, bad argument); raised at load time."""


@dataclass(frozen=True)
class TransformContext:
    """What transforms may consult: the taxonomy tables product ops maintains."""

    taxonomies: Mapping[str, Taxonomy] = field(default_factory=dict)


@dataclass(frozen=True)
class Taxonomy:
    """Tags to product areas: the first area whose tag list contains a tag wins."""

    areas: Mapping[str, tuple[str, ...]]
    default: str | None = None

    def lookup(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for area, tags in self.areas.items():
            for tag in tags:
                table.setdefault(tag.lower(), area)
        return table


@dataclass(frozen=True)
class TransformDef:
    name: str
    summary: str
    build: Callable[[Any, Mapping[str, Any], TransformContext], Fn]
    takes_argument: bool = False
    options: frozenset[str] = frozenset()


def _elementwise(fn: Fn) -> Fn:
    """Apply a scalar function to each element of a list, and pass None through."""

    def apply(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [fn(v) for v in value if v is not None]
        return fn(value)

    return apply


def _text(fn: Callable[[str], Any]) -> Fn:
    return _elementwise(lambda v: fn(v if isinstance(v, str) else str(v)))


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 text, or epoch seconds / milliseconds, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date-time")
    elif isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 100_000_000_000 else value
        parsed = datetime.fromtimestamp(seconds, UTC)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return parse_datetime(float(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO 8601 date-time") from None
    else:
        raise ValueError(f"{type(value).__name__} is not a date-time")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(value: Any) -> str | None:
    parsed = parse_datetime(value)
    return parsed.isoformat().replace("+00:00", "Z") if parsed else None


def format_date(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip()).isoformat()
    parsed = parse_datetime(value)
    return parsed.date().isoformat() if parsed else None


def to_integer(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not an integer")
    if isinstance(value, int):
        return value
    number = float(value) if isinstance(value, str | float) else None
    if number is None or not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def to_number(value: Any) -> int | float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"'{value}' is not a number") from None
        return int(number) if number.is_integer() and "." not in text else number
    raise ValueError(f"{type(value).__name__} is not a number")


_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off", ""}


def to_boolean(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{value!r} is not a boolean")


def to_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ValueError(
            f"a {type(value).__name__} is not a single value; select a field inside it"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def email_domain(value: str) -> str | None:
    if "@" not in value:
        return None
    domain = value.rsplit("@", 1)[1].strip().lower().rstrip(".")
    return domain or None


def url_domain(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if "@" in text and "://" not in text:
        return email_domain(text)
    host = urlsplit(text if "://" in text else f"//{text}").hostname
    if not host:
        return None
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _no_arg(fn: Fn) -> Callable[[Any, Mapping[str, Any], TransformContext], Fn]:
    return lambda _arg, _opts, _ctx: fn


def _build_map(arg: Any, opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    if not isinstance(arg, Mapping):
        raise TransformError("map needs a table of source value = unified value")
    table = {str(k): v for k, v in arg.items()}
    has_fallback = "fallback" in opts
    fallback = opts.get("fallback")

    def lookup(value: Any) -> Any:
        key = to_string(value) if not isinstance(value, bool) else str(value).lower()
        if key in table:
            return table[key]
        return fallback if has_fallback else value

    return _elementwise(lookup)


def _build_default(arg: Any, _opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    return lambda value: arg if value is None or value in ("", []) else value


def _build_taxonomy(arg: Any, opts: Mapping[str, Any], ctx: TransformContext) -> Fn:
    if not isinstance(arg, str):
        raise TransformError("taxonomy needs the name of a taxonomy table")
    if arg not in ctx.taxonomies:
        known = ", ".join(sorted(ctx.taxonomies)) or "none defined"
        raise TransformError(
            f"no taxonomy '{arg}'{did_you_mean(arg, ctx.taxonomies)} (taxonomies: {known})"
        )
    taxonomy = ctx.taxonomies[arg]
    area_of = _tag_areas(taxonomy.lookup())
    want_all = bool(opts.get("all", False))

    def classify(value: Any) -> Any:
        tags = value if isinstance(value, list) else [] if value is None else [value]
        areas: list[str] = []
        for tag in tags:
            area = area_of(tag)
            if area is not None and area not in areas:
                areas.append(area)
        if want_all:
            return areas or ([taxonomy.default] if taxonomy.default else [])
        return areas[0] if areas else taxonomy.default

    return classify


_MEMO_LIMIT = 65_536


def _tag_areas(table: Mapping[str, str]) -> Callable[[Any], str | None]:
    """tag -> area of `table`, remembered per text tag: a stream repeats a small vocabulary of
    tags on every record, so each is lower-cased and looked up once (at most _MEMO_LIMIT
    remembered, so that a stream of unique tags cannot grow it without bound)."""
    memo: dict[str, str | None] = {}

    def area_of(tag: Any) -> str | None:
        if type(tag) is not str:
            return table.get(str(tag).lower())
        try:
            return memo[tag]
        except KeyError:
            area = table.get(tag.lower())
            if len(memo) < _MEMO_LIMIT:
                memo[tag] = area
            return area

    return area_of


def _build_split(arg: Any, _opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    if not isinstance(arg, str) or not arg:
        raise TransformError('split needs a separator string, e.g. { split = "," }')

    def split(value: Any) -> Any:
        if value is None or isinstance(value, list):
            return value
        return [part.strip() for part in str(value).split(arg) if part.strip()]

    return split


def _build_join(arg: Any, _opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    if not isinstance(arg, str):
        raise TransformError('join needs a separator string, e.g. { join = ", " }')
    return lambda v: arg.join(str(x) for x in v if x is not None) if isinstance(v, list) else v


def _build_regex(arg: Any, opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    if not isinstance(arg, str):
        raise TransformError("regex needs a pattern string")
    try:
        pattern = re.compile(arg)
    except re.error as exc:
        raise TransformError(f"regex '{arg}' does not compile: {exc}") from None
    group = opts.get("group", 0)
    want_all = bool(opts.get("all", False))

    def extract(value: Any) -> Any:
        texts = value if isinstance(value, list) else [] if value is None else [value]
        found: list[str] = []
        for text in texts:
            for match in pattern.finditer(str(text)):
                hit = match.group(group)
                if hit not in found:
                    found.append(hit)
                if not want_all:
                    return hit
        return found if want_all else None

    return extract


def _build_number_op(name: str, op: Callable[[float, Any], Any]) -> Any:
    def build(arg: Any, _opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise TransformError(f"{name} needs a number")
        return _elementwise(lambda v: op(to_number(v) or 0, arg) if v is not None else None)

    return build


def _build_custom_field(arg: Any, _opts: Mapping[str, Any], _ctx: TransformContext) -> Fn:
    if isinstance(arg, bool) or not isinstance(arg, int | str):
        raise TransformError("custom_field needs the field id")
    wanted = str(arg)
    number = int(wanted) if re.fullmatch(r"-?\d+", wanted) else None
    wanted_int = number if str(number) == wanted else None  # "0123" matches no integer id

    def pick(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        for item in value:
            if type(item) is dict or isinstance(item, Mapping):  # dict first: no ABC check
                ident = item.get("id")
                # An integer id (the usual case) is compared as a number: str() of each id
                # was most of the cost of a record's mapping. Anything else compares as text.
                if ident == wanted_int if type(ident) is int else str(ident) == wanted:
                    return item.get("value")
        return None

    return pick


def _unique(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    seen: list[Any] = []
    for item in value:
        if item not in seen:
            seen.append(item)
    return seen


TRANSFORMS: dict[str, TransformDef] = {
    t.name: t
    for t in [
        TransformDef(
            "lower", "lower-case text (each element of a list)", _no_arg(_text(str.lower))
        ),
        TransformDef("upper", "upper-case text", _no_arg(_text(str.upper))),
        TransformDef("strip", "trim surrounding whitespace", _no_arg(_text(str.strip))),
        TransformDef("string", "any scalar as text", _no_arg(_elementwise(to_string))),
        TransformDef("integer", "a whole number", _no_arg(_elementwise(to_integer))),
        TransformDef(
            "number", "a number (text like '1,200.50' accepted)", _no_arg(_elementwise(to_number))
        ),
        TransformDef("boolean", "true/false, yes/no, 1/0", _no_arg(_elementwise(to_boolean))),
        TransformDef(
            "datetime",
            "ISO 8601 or epoch s/ms, as UTC ISO 8601",
            _no_arg(_elementwise(format_datetime)),
        ),
        TransformDef("date", "a calendar date, YYYY-MM-DD", _no_arg(_elementwise(format_date))),
        TransformDef("email_domain", "jane@Acme.com -> acme.com", _no_arg(_text(email_domain))),
        TransformDef(
            "url_domain", "https://www.acme.com/x -> acme.com", _no_arg(_text(url_domain))
        ),
        TransformDef(
            "first",
            "the first element of a list",
            _no_arg(lambda v: (v[0] if v else None) if isinstance(v, list) else v),
        ),
        TransformDef("unique", "drop repeated list elements", _no_arg(_unique)),
        TransformDef(
            "list",
            "wrap a single value in a list",
            _no_arg(lambda v: v if isinstance(v, list) or v is None else [v]),
        ),
        TransformDef(
            "map",
            "translate values through a table; option fallback",
            _build_map,
            True,
            frozenset({"fallback"}),
        ),
        TransformDef("default", "use this value when the source is empty", _build_default, True),
        TransformDef(
            "taxonomy",
            "tags -> product area via a taxonomy table; option all",
            _build_taxonomy,
            True,
            frozenset({"all"}),
        ),
        TransformDef("split", "split text into a list on a separator", _build_split, True),
        TransformDef("join", "join a list into text", _build_join, True),
        TransformDef(
            "regex",
            "extract matches; options group, all",
            _build_regex,
            True,
            frozenset({"group", "all"}),
        ),
        TransformDef(
            "multiply",
            "multiply a number (e.g. cents -> units)",
            _build_number_op("multiply", lambda v, a: v * a),
            True,
        ),
        TransformDef(
            "round",
            "round a number to N decimals",
            _build_number_op("round", lambda v, a: round(v, int(a))),
            True,
        ),
        TransformDef(
            "custom_field", "value of [{id, value}] entry with this id", _build_custom_field, True
        ),
    ]
}


def build_transform(spec: Any, ctx: TransformContext) -> Fn:
    """Compile one transform spec; raise TransformError naming what is wrong."""
    if isinstance(spec, str):
        definition = _lookup(spec)
        if definition.takes_argument:
            raise TransformError(f"'{spec}' needs an argument, e.g. {{ {spec} = ... }}")
        return definition.build(None, {}, ctx)
    if isinstance(spec, Mapping):
        names = [key for key in spec if key in TRANSFORMS]
        if len(names) != 1:
            keys = ", ".join(map(str, spec)) or "nothing"
            if not names and spec:
                first = next(iter(spec))
                raise TransformError(
                    f"unknown transform '{first}'{did_you_mean(str(first), TRANSFORMS)}"
                )
            raise TransformError(f"a transform table names exactly one transform (got {keys})")
        name = names[0]
        definition = TRANSFORMS[name]
        options = {k: v for k, v in spec.items() if k != name}
        for option in options:
            if option not in definition.options:
                allowed = ", ".join(sorted(definition.options)) or "none"
                hint = did_you_mean(option, definition.options)
                raise TransformError(
                    f"transform '{name}' has no option '{option}'{hint} (options: {allowed})"
                )
        return definition.build(spec[name], options, ctx)
    raise TransformError("a transform is a name or a table like { map = { a = 'b' } }")


def _lookup(name: str) -> TransformDef:
    if name not in TRANSFORMS:
        raise TransformError(f"unknown transform '{name}'{did_you_mean(name, TRANSFORMS)}")
    return TRANSFORMS[name]


_CANONICAL_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def coerce_datetime(value: Any) -> str | None:
    """datetime fields: already-canonical UTC text (the common case) passes straight through."""
    if type(value) is str and _CANONICAL_UTC.fullmatch(value):
        return value
    return format_datetime(value)


def _passthrough(kind: type, convert: Fn) -> Fn:
    """Skip the conversion when the value already has the target type (runs once per field)."""
    return lambda value: value if type(value) is kind else convert(value)


# The types each coercion passes through unchanged (the compiled mapping tests them inline).
COERCE_KEEPS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}

COERCE: dict[str, Fn] = {
    "string": _passthrough(str, to_string),
    "integer": _passthrough(int, to_integer),
    "number": lambda v: v if type(v) in (int, float) else to_number(v),
    "boolean": _passthrough(bool, to_boolean),
    "datetime": coerce_datetime,
    "date": format_date,
    "json": lambda v: v,
}


def coerce_list(value: Any) -> list[str]:
    """string_list: None -> [], a scalar -> [it], a list -> its non-empty elements as text."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:  # a loop, not all(generator): this runs for every list field read
        if type(item) is not str:
            break
    else:  # the usual list of tags, already text
        return [v for v in items if v]
    texts = (v if type(v) is str else to_string(v) for v in items if v is not None)
    return [text for text in texts if text]


COERCE["string_list"] = coerce_list
