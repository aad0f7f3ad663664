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
from pmsync.sync.mapping.transforms import COERCE, Fn

Getter = Callable[[Mapping[str, Any]], Any]
_FIELD_ERRORS = (ValueError, TypeError, ArithmeticError, JMESPathError)
_EMPTY: tuple[Any, ...] = (None, "", [])


class PathError(ValueError):
    """A path does not parse as JMESPath, or calls a function jmespath does not have."""


def compile_path(expression: str) -> tuple[Getter, frozenset[str]]:
    """A getter for a JMESPath expression and the top-level source fields it reads."""
    try:
        compiled = compile_expression(expression)
    except ExpressionError as exc:
        raise PathError(f"'{expression}' is not a valid JMESPath expression ({exc})") from None
    ast = compiled.parsed
    roots = frozenset(_root_fields(ast))
    chain = _field_chain(ast)
    if chain is not None:
        return _dotted_getter(chain), roots
    return compiled.search, roots


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
        """(key, unified fields) for one record; MappingFailure names the failing field."""
        key = self.key_of(record)
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
        return key, unified


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
    if path is not None:
        getter, roots = compile_path(path)
        source = f"path '{path}'"
    else:
        getter, roots = _constant(constant), frozenset()
        source = "constant value"
    return (
        CompiledField(name, getter, transforms, COERCE[field_type], field_type, required, source),
        roots,
    )
