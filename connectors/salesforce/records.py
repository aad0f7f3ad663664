"""One record shape whichever API read it: REST JSON and Bulk API 2.0 CSV give the same dict.

The engine hashes raw records to skip unchanged ones, so a record read through Bulk and later
re-read through REST must come out identical: `attributes` (whose URL carries the API
version) are dropped, CSV text is typed from describe, and datetimes use the REST form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from pmsync.connectors.base import Record

NUMBER_TYPES = frozenset({"currency", "double", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})


def clean(record: Mapping[str, Any]) -> Record:
    """A REST record without `attributes`, nested relationship records included."""
    out: Record = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        out[key] = clean(value) if isinstance(value, Mapping) else value
    return out


def typed(value: str, field_type: str | None) -> Any:
    """One Bulk CSV cell as REST would have given it."""
    if value == "":
        return None
    if field_type == "boolean":
        return value.lower() == "true"
    if field_type in INTEGER_TYPES:
        return int(float(value))
    if field_type in NUMBER_TYPES:
        return float(value)
    if field_type == "datetime" and value.endswith("Z"):
        return value[:-1] + "+0000"
    return value


def csv_records(text: str, types: Mapping[str, str]) -> Iterator[Record]:
    """Records of one Bulk API 2.0 result page; Owner.Name columns become nested records."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    for row in reader:
        if not row:
            continue
        record: Record = {}
        related: dict[str, dict[str, Any]] = {}
        for column, cell in zip(header, row, strict=False):
            if "." in column:
                relation, _, sub = column.partition(".")
                related.setdefault(relation, {})[sub] = typed(cell, types.get(column, "string"))
                record.setdefault(relation, None)
            else:
                record[column] = typed(cell, types.get(column))
        for relation, values in related.items():
            # REST gives null for a missing related record; CSV only has empty cells.
            record[relation] = values if any(v is not None for v in values.values()) else None
        yield record
