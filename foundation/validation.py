"""Turn pydantic validation errors into Problems that name the TOML path and suggest fixes."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from pmsync.errors import Problem


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean 'x'?' when a candidate is close to `name`, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def toml_path(parts: Sequence[str | int]) -> str:
    """Render a location as a TOML-ish path: a.b[0].c."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def pydantic_problems(
    exc: ValidationError,
    *,
    file: str | None,
    model: type[BaseModel] | None = None,
    prefix: str = "",
) -> list[Problem]:
    """One Problem per pydantic error, never echoing the input (it may be a secret)."""
    # Inputs are read only to suggest an allowed value; no message repeats them.
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if not _is_union_tag(part)]
        path = toml_path([*([prefix] if prefix else []), *loc])
        kind = error["type"]
        if kind == "extra_forbidden":
            known = _fields_at(model, loc[:-1]) if model else set()
            name = str(loc[-1]) if loc else "?"
            known_list = f" (known: {', '.join(sorted(known))})" if known else ""
            message = f"unknown field '{name}'{did_you_mean(name, known) or known_list}"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
            ctx = error.get("ctx") or {}
            if "expected" in ctx and "literal" in kind:
                message = f"must be one of {ctx['expected']}{_literal_hint(error)}"
        problems.append(Problem(file, path, message))
    return problems


def _literal_hint(error: Any) -> str:
    """A did-you-mean among a literal's allowed values. The input itself is never shown (it
    may be a secret); it only picks the closest allowed value."""
    given = error.get("input")
    allowed = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
    return did_you_mean(given, allowed) if isinstance(given, str) else ""


def _is_union_tag(part: Any) -> bool:
    """Pydantic inserts type names (e.g. 'str', 'FieldSpec') in union locations; drop them."""
    return isinstance(part, str) and (part[:1].isupper() or part in {"str", "int", "float", "bool"})


def _fields_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> set[str]:
    """The field names a model accepts at `loc`, following nested models, lists and dicts."""
    current: Any = model
    for part in loc:
        current = _descend(current, part)
        if current is None:
            return set()
    if isinstance(current, type) and issubclass(current, BaseModel):
        return set(current.model_fields)
    return set()


def _descend(annotation: Any, part: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset) or origin is dict:
        args = typing.get_args(annotation)
        return _unwrap(args[-1]) if args else None
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated/unions down to the first model or container inside."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if (isinstance(inner, type) and issubclass(inner, BaseModel)) or typing.get_origin(
                inner
            ) in (list, dict):
                return inner
        return None
    return annotation
