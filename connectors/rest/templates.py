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
from collections.abc import Mapping
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


def placeholders(value: Any) -> set[str]:
    """Every placeholder name used anywhere in a value (strings, lists, tables)."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        found: set[str] = set()
        for key, item in value.items():
            found |= placeholders(key) | placeholders(item)
        return found
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def malformed_placeholders(value: Any) -> set[str]:
    """Every `{{...}}` (or unclosed `{{`) in a value that is not a placeholder."""
    if isinstance(value, str):
        return {
            match.group(0)
            for match in BRACES.finditer(value)
            if not PLACEHOLDER.fullmatch(match.group(0))
        }
    if isinstance(value, Mapping):
        found: set[str] = set()
        for key, item in value.items():
            found |= malformed_placeholders(key) | malformed_placeholders(item)
        return found
    if isinstance(value, list):
        return set().union(*(malformed_placeholders(v) for v in value)) if value else set()
    return set()


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
