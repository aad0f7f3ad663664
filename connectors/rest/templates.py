"""`{{name}}` placeholders in an endpoint's path, query parameters and JSON body.

A string that is exactly one placeholder becomes the variable's value with its JSON type (a
number stays a number); a placeholder inside a longer string is replaced by its text. Single
braces are left alone, so an API's own template syntax (HogQL's `{since}`) passes through.
Double braces are always ours: anything between them other than a bare name (`{{since|epoch}}`,
`{{ since.value }}`, an unclosed `{{since`) is malformed, and the configuration is refused
rather than the text being sent literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
BRACES = re.compile(r"\{\{(.*?)(\}\}|$)", re.DOTALL)

VARIABLES = {
    "since": "the incremental value this read starts from (incremental.initial_value at first)",
    "offset": "offset pagination: rows to skip",
    "limit": "offset pagination: rows per page",
    "page": "page_number pagination: the page number",
    "page_size": "page_number pagination: rows per page",
    "next_token": "cursor pagination: the token of the next page (null on the first)",
}

#: The placeholders each pagination style provides (besides `since`, with incremental).
STYLE_VARIABLES: dict[str, frozenset[str]] = {
    "cursor": frozenset({"next_token"}),
    "offset": frozenset({"offset", "limit"}),
    "page_number": frozenset({"page", "page_size"}),
}


def _texts(value: Any) -> Iterator[str]:
    """Every string in a value: itself, or the keys and items of its tables and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def placeholders(value: Any) -> set[str]:
    """Every placeholder name used anywhere in a value (strings, lists, tables)."""
    return {name for text in _texts(value) for name in PLACEHOLDER.findall(text)}


def malformed_placeholders(value: Any) -> set[str]:
    """Every `{{...}}` (or unclosed `{{`) in a value that is not a placeholder."""
    return {
        match.group(0)
        for text in _texts(value)
        for match in BRACES.finditer(text)
        if not PLACEHOLDER.fullmatch(match.group(0))
    }


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    """A copy of `value` with its placeholders replaced."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return variables.get(whole.group(1))
        return PLACEHOLDER.sub(lambda m: _text(variables.get(m.group(1))), value)
    if isinstance(value, Mapping):
        return {render(k, variables): render(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, variables) for v in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
