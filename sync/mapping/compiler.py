"""Compile a stream mapping once into plain functions, then apply it to each record.

Paths are JMESPath. Simple dotted paths (the common case) are compiled to direct dictionary
lookups with the same semantics (a missing key or a non-object gives null), because the mapping
runs once per record and must not be the slow part of a sync.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jmespath.exceptions import JMESPathError

from pmsync.errors import MappingFailure
from pmsync.expressions import ExpressionError, compile_expression
from pmsync.sync.entities import FieldType
from pmsync.sync.mapping.transforms import COERCE, COERCE_KEEPS, Fn

Getter = Callable[[Mapping[str, Any]], Any]
_FIELD_ERRORS = (ValueError, TypeError, ArithmeticError, JMESPathError)
_EMPTY: tuple[Any, ...] = (None, "", [])


class PathError(ValueError):
    """A path does not parse as JMESPath, or calls a function jmespath does not have."""


def compile_path(expression: str) -> tuple[Getter, frozenset[str]]:
    """A getter for a JMESPath expression and the top-level source fields it reads."""
    getter, roots, _chain = _compile_path(expression)
    return getter, roots


def _compile_path(expression: str) -> tuple[Getter, frozenset[str], tuple[str, ...] | None]:
    """`compile_path`, and the keys of a plain dotted path (None for any other expression)."""
    try:
        compiled = compile_expression(expression)
    except ExpressionError as exc:
        raise PathError(f"'{expression}' is not a valid JMESPath expression ({exc})") from None
    ast = compiled.parsed
    roots = frozenset(_root_fields(ast))
    chain = _field_chain(ast)
    if chain is not None:
        return _dotted_getter(chain), roots, tuple(chain)
    return compiled.search, roots, None


def _field_chain(node: Mapping[str, Any]) -> list[str] | None:
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] == "subexpression":
        parts: list[str] = []
        for child in node["children"]:
            sub = _field_chain(child)
            if sub is None:
                return None
            parts.extend(sub)
        return parts
    return None


def _dotted_getter(keys: list[str]) -> Getter:
    if len(keys) == 1:
        only = keys[0]
        return lambda record: record.get(only) if isinstance(record, dict) else None

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


def _root_fields(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "field":
        return {node["value"]}
    if (
        kind
        in {
            "subexpression",
            "index_expression",
            "projection",
            "filter_projection",
            "flatten",
            "value_projection",
            "pipe",
        }
        and children
    ):
        return _root_fields(children[0])
    found: set[str] = set()
    for child in children:
        if isinstance(child, dict):
            found |= _root_fields(child)
    return found


@dataclass(frozen=True)
class CompiledField:
    """One unified field: where its value comes from and how it is shaped."""

    name: str
    getter: Getter
    transforms: tuple[Fn, ...]
    coerce: Fn
    field_type: FieldType
    required: bool
    source: str
    # The keys of a plain dotted path (what `getter` looks up), for the compiled record mapper.
    chain: tuple[str, ...] | None = None


@dataclass
class CompiledStream:
    """A stream mapping ready to run: key, fields, and where it was declared."""

    connector: str
    stream: str
    entity: str
    file: str
    key_path: str | None
    fields: tuple[CompiledField, ...]
    source_fields: frozenset[str]
    _key_getter: Getter | None = field(default=None, repr=False)
    _mapper: tuple[tuple[CompiledField, ...], RecordMapper] | None = field(default=None, repr=False)

    def bind_key(self, default_key: str) -> None:
        """Use the stream's own key field unless the mapping names a key path."""
        path = self.key_path or default_key
        self._key_getter, roots = compile_path(path)
        self.source_fields = self.source_fields | roots

    def key_of(self, record: Mapping[str, Any]) -> str:
        """The record's key as text; MappingFailure when it has none."""
        if self._key_getter is None:
            raise RuntimeError("bind_key() must be called before mapping records")
        try:
            key = self._key_getter(record)
        except (ValueError, TypeError, ArithmeticError, JMESPathError) as exc:
            raise MappingFailure(
                f"{exc} (from key path '{self.key_path or 'the stream key'}')", field="key"
            ) from None
        if key is None or key == "" or isinstance(key, dict | list):
            raise MappingFailure(
                f"no usable key at '{self.key_path or 'the stream key'}'", field="key"
            )
        return str(key)

    def source_value(self, spec: CompiledField, record: Mapping[str, Any]) -> Any:
        """What `spec`'s path finds in `record`, or the reason it finds nothing (a preview
        shows it rather than stopping)."""
        try:
            return spec.getter(record)
        except (ValueError, TypeError, ArithmeticError, JMESPathError) as exc:
            return f"(cannot be read: {exc})"

    def map_record(self, record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(key, unified fields) for one record; MappingFailure names the failing field.

        A record (a JSON object) goes through the fields' code compiled into one function
        (`compile_mapper`); when that finds any field failing, the record is mapped again
        field by field (`map_fields`), which says which field failed and why."""
        key = self.key_of(record)
        if type(record) is dict:
            mapper = self._mapper
            if mapper is None or mapper[0] is not self.fields:
                mapper = self._mapper = (self.fields, compile_mapper(self.fields))
            unified = mapper[1](record)
            if unified is not None:
                return key, unified
        return key, self.map_fields(record, key)

    def map_fields(self, record: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The unified fields of `record`, one field at a time: the reference for what a
        record maps to; MappingFailure names the first field that fails."""
        unified: dict[str, Any] = {}
        for spec in self.fields:
            try:
                value = spec.getter(record)
                for transform in spec.transforms:
                    value = transform(value)
                value = spec.coerce(value)
            except _FIELD_ERRORS as exc:
                raise MappingFailure(
                    f"{exc} (from {spec.source})", field=spec.name, key=key
                ) from None
            if spec.required and value in _EMPTY:
                raise MappingFailure(
                    f"required, but {spec.source} is empty", field=spec.name, key=key
                )
            unified[spec.name] = value
        return unified


RecordMapper = Callable[[dict[str, Any]], dict[str, Any] | None]


def compile_mapper(fields: tuple[CompiledField, ...]) -> RecordMapper:
    """One function mapping a record (a dict) to its unified fields as `map_fields` does, or
    None when some field fails (any exception, an empty required field): the caller then maps
    the record with `map_fields`, which finds and names the failure (the functions a field
    runs are pure, so running them twice changes nothing).

    The mapping runs once per field of every record read; as one function, with dotted paths
    as inline lookups and coercions skipped inline when the value has the type already, it
    does without a loop, a call per lookup and an exception handler per field. The source
    holds no text from the mapping file: names, keys and functions are bound as variables.
    """
    scope: dict[str, Any] = {"EMPTY": _EMPTY}
    lines = ["def mapper(record):", "    try:", "        pass"]
    for index, spec in enumerate(fields):
        lines += [f"        {line}" for line in _field_lines(index, spec, scope)]
    # Any exception: `map_fields` runs the same functions again, and fails as it fails.
    lines += ["    except Exception:", "        return None"]
    for index, spec in enumerate(fields):
        if spec.required:
            lines.append(f"    if f{index} in EMPTY: return None")
    for index, spec in enumerate(fields):
        scope[f"n{index}"] = spec.name
    entries = ", ".join(f"n{index}: f{index}" for index in range(len(fields)))
    lines.append(f"    return {{{entries}}}")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the field list only, see above
    mapper: RecordMapper = scope["mapper"]
    return mapper


def _field_lines(index: int, spec: CompiledField, scope: dict[str, Any]) -> list[str]:
    """Statements leaving field `index`'s value in `f{index}` (see `compile_mapper`)."""
    lines: list[str] = []
    if spec.chain:
        for depth, key in enumerate(spec.chain):
            scope[f"k{index}_{depth}"] = key
            if depth == 0:
                lines.append(f"v = record.get(k{index}_0)")
            else:
                lines.append(f"v = v.get(k{index}_{depth}) if isinstance(v, dict) else None")
    else:
        scope[f"g{index}"] = spec.getter
        lines.append(f"v = g{index}(record)")
    for number, transform in enumerate(spec.transforms):
        scope[f"t{index}_{number}"] = transform
        lines.append(f"v = t{index}_{number}(v)")
    scope[f"c{index}"] = spec.coerce
    keeps = COERCE_KEEPS.get(spec.field_type) if spec.coerce is COERCE[spec.field_type] else None
    if keeps:
        for number, kind in enumerate(keeps):
            scope[f"s{index}_{number}"] = kind
        test = " and ".join(f"type(v) is not s{index}_{number}" for number in range(len(keeps)))
        lines.append(f"f{index} = c{index}(v) if {test} else v")
    else:
        lines.append(f"f{index} = c{index}(v)")
    return lines


def _constant(value: Any) -> Getter:
    return lambda _record: value


def make_field(
    name: str,
    *,
    path: str | None,
    constant: Any,
    transforms: tuple[Fn, ...],
    field_type: FieldType,
    required: bool,
) -> tuple[CompiledField, frozenset[str]]:
    """Build one CompiledField from an already-validated spec."""
    chain: tuple[str, ...] | None = None
    if path is not None:
        getter, roots, chain = _compile_path(path)
        source = f"path '{path}'"
    else:
        getter, roots = _constant(constant), frozenset()
        source = "constant value"
    coerce = COERCE[field_type]
    return (
        CompiledField(name, getter, transforms, coerce, field_type, required, source, chain),
        roots,
    )
