"""How the simulated Jira validates and applies edits: field values, properties, remote links.

Messages are Jira's own wording, so the connector's error handling meets what it will meet.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson


def operate(current: Any, operations: Any) -> Any:
    """Apply an `update` list ([{"set": v}], [{"add": v}], [{"remove": v}]) to a value."""
    value = copy.deepcopy(current)
    for operation in operations if isinstance(operations, list) else []:
        for verb, argument in operation.items():
            if verb == "set":
                value = argument
            elif verb == "add":
                value = [*(value or []), argument]
            elif verb == "remove":
                value = [v for v in (value or []) if v != argument and not _same_ref(v, argument)]
    return value


def _same_ref(a: Any, b: Any) -> bool:
    return (
        isinstance(a, dict)
        and isinstance(b, dict)
        and any(a.get(k) is not None and a.get(k) == b.get(k) for k in ("id", "name"))
    )


def check_value(  # noqa: PLR0911 - one answer per Jira validation message
    definition: dict[str, Any], value: Any, project: dict[str, Any]
) -> tuple[str | None, Any]:
    """(Jira's error text, None) or (None, the value to store)."""
    schema = definition.get("schema") or {}
    kind, items = schema.get("type"), schema.get("items")
    if value is None:
        if definition["id"] == "summary":
            return "You must specify a summary of the issue.", None
        return None, [] if kind == "array" else None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "Operation value must be a number", None
        return None, value
    if kind == "string":
        if not isinstance(value, str):
            return "Operation value must be a string", None
        if definition["id"] == "summary" and not value.strip():
            return "You must specify a summary of the issue.", None
        return None, value
    if kind == "array" and items == "string":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "Operation value must be an array of strings", None
        spaced = next((v for v in value if " " in v), None)
        if spaced is not None:
            return f"The label '{spaced}' contains spaces which is invalid.", None
        return None, value
    if kind == "array" and items in ("version", "component"):
        return _check_refs(value, project.get(f"{items}s", []), items)
    return None, value


def _check_refs(value: Any, known: list[dict[str, Any]], kind: str) -> tuple[str | None, Any]:
    if not isinstance(value, list):
        return f"Operation value must be an array of {kind}s", None
    chosen: list[dict[str, Any]] = []
    for ref in value:
        match = next((k for k in known if isinstance(ref, dict) and _same_ref(k, ref)), None)
        if match is None:
            name = ref.get("name") or ref.get("id") if isinstance(ref, dict) else ref
            return f"{kind.title()} name '{name}' is not valid", None
        chosen.append(match)
    return None, chosen


def property_problem(key: str, raw: bytes) -> str | None:
    if len(key) > 255:
        return "The property key cannot be longer than 255 characters."
    if not raw.strip():
        return "The property value cannot be empty."
    if len(raw.decode("utf-8", "replace")) > 32_768:
        return "The property value cannot be longer than 32768 characters."
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "The property value is not valid JSON."
    return None


def link_problem(body: Any) -> dict[str, str] | None:
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        return {"object": "'object' is required."}
    missing = {k: f"'{k}' is required." for k in ("url", "title") if not body["object"].get(k)}
    return missing or None
