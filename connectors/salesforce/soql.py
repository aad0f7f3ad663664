"""Build the few SOQL statements the connector sends, with literals quoted as SOQL wants."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")


def string(value: str) -> str:
    """A quoted SOQL string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def datetime_literal(value: datetime) -> str:
    """An unquoted SOQL dateTime literal in UTC, at the second precision Salesforce keeps."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def field_name(name: str) -> str:
    """A field name or Relationship.Field checked before it goes into a statement."""
    if not _NAME.match(name):
        raise ValueError(f"'{name}' is not a Salesforce field name")
    return name


def select(
    fields: Sequence[str],
    object_name: str,
    *,
    where: str | None = None,
    order_by: str | None = None,
) -> str:
    statement = f"SELECT {', '.join(field_name(f) for f in fields)} FROM {field_name(object_name)}"
    if where:
        statement += f" WHERE {where}"
    if order_by:
        statement += f" ORDER BY {order_by}"
    return statement


def any_of(parts: Sequence[str]) -> str | None:
    """OR the conditions together (None when there are none)."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
