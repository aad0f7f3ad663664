"""Run an aggregation pipeline (after the source stage) over rows, as Pendo's engine does.

Operators: `identified` (drop rows whose named id is empty or anonymous), `filter` (see
expressions.py), `select` (new field = dotted source path), `group` (group by fields; fields
given as an object or as a list of one-key objects, each `{name: {sum|count|min|max: field}}`;
`count` of a field counts its distinct non-null values, `count` of null counts rows), `sort`
(field names, `-` prefix for descending), `limit`. Any other operator is a PipelineError,
answered with 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pmsync.simulators.pendo.expressions import ExpressionError, compile_filter, field_value

Row = dict[str, Any]
ANONYMOUS_PREFIX = "_PENDO_T_"


class PipelineError(ValueError):
    """The pipeline is malformed or uses what the simulator does not implement."""


def run_operators(rows: list[Row], stages: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Apply each stage after the source, in order."""
    for stage in stages:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise PipelineError(f"each pipeline stage is an object with one operator: {stage}")
        (operator, argument), *_ = stage.items()
        handler = _OPERATORS.get(operator)
        if handler is None:
            raise PipelineError(f"unknown pipeline operator '{operator}'")
        rows = handler(rows, argument)
    return rows


def _identified(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, str):
        raise PipelineError("identified takes a field name")
    return [
        r
        for r in rows
        if (value := field_value(r, argument)) not in (None, "")
        and not str(value).startswith(ANONYMOUS_PREFIX)
    ]


def _filter(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, str):
        raise PipelineError("filter takes an expression string")
    try:
        predicate = compile_filter(argument)
    except ExpressionError as exc:
        raise PipelineError(str(exc)) from None
    return [r for r in rows if predicate(r)]


def _select(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, Mapping):
        raise PipelineError("select takes an object of name: path")
    return [{name: field_value(r, str(path)) for name, path in argument.items()} for r in rows]


def _group(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, Mapping) or not isinstance(argument.get("group"), list):
        raise PipelineError("group takes {group: [fields], fields: ...}")
    keys = [str(k) for k in argument["group"]]
    aggregates = list(_aggregates(argument.get("fields") or {}))
    buckets: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        buckets.setdefault(tuple(field_value(row, k) for k in keys), []).append(row)
    out: list[Row] = []
    for values, members in buckets.items():
        result: Row = dict(zip(keys, values, strict=True))
        for name, reduce in aggregates:
            result[name] = reduce(members)
        out.append(result)
    return out


def _aggregates(fields: Any) -> Iterable[tuple[str, Callable[[list[Row]], Any]]]:
    items: list[tuple[str, Any]]
    if isinstance(fields, Mapping):
        items = list(fields.items())
    elif isinstance(fields, list):
        items = [next(iter(f.items())) for f in fields if isinstance(f, Mapping) and len(f) == 1]
    else:
        raise PipelineError("group fields must be an object or a list of objects")
    for name, spec in items:
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise PipelineError(f"group field '{name}' needs one aggregate, e.g. {{sum: field}}")
        (kind, source), *_ = spec.items()
        yield str(name), _aggregate(str(kind), source)


def _aggregate(kind: str, source: Any) -> Callable[[list[Row]], Any]:
    if kind == "count":
        if source is None:
            return len
        return lambda rows: len({v for r in rows if (v := field_value(r, str(source))) is not None})
    if kind not in ("sum", "min", "max"):
        raise PipelineError(f"unknown aggregate '{kind}'")
    path = str(source)

    def reduce(rows: list[Row]) -> Any:
        values = [v for r in rows if isinstance(v := field_value(r, path), int | float)]
        if kind == "sum":
            return sum(values)
        if not values:
            return None
        return min(values) if kind == "min" else max(values)

    return reduce


def _sort(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, list):
        raise PipelineError("sort takes a list of field names")
    for field in reversed([str(f) for f in argument]):
        descending = field.startswith("-")
        rows = sorted(rows, key=_sort_key(field.lstrip("-")), reverse=descending)
    return rows


def _sort_key(path: str) -> Callable[[Row], tuple[int, Any]]:
    def key(row: Row) -> tuple[int, Any]:
        return _order(field_value(row, path))

    return key


def _order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (1, value)
    return (2, str(value))


def _limit(rows: list[Row], argument: Any) -> list[Row]:
    if not isinstance(argument, int) or argument < 0:
        raise PipelineError("limit takes a non-negative integer")
    return rows[:argument]


_OPERATORS: dict[str, Callable[[list[Row], Any], list[Row]]] = {
    "identified": _identified,
    "filter": _filter,
    "select": _select,
    "group": _group,
    "sort": _sort,
    "limit": _limit,
}
