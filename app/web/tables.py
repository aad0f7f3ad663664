"""Tables as the pages show them and as CSV exports them: one model, two renderings.

A table knows its columns (label, kind, link), sorts and pages its rows from the query string,
and writes every row (not only the page shown) as CSV. Sorting and paging are plain links, so
tables work without JavaScript.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Kind = Literal["text", "number", "money", "date", "datetime", "trend"]
Row = dict[str, Any]
Link = Callable[[Row], str | None]
_NUMERIC: frozenset[str] = frozenset({"number", "money"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Column:
    """One column: its CSV name, its label, how values show, and where a cell links to."""

    key: str
    label: str
    kind: Kind = "text"
    link: Link | None = None
    external: bool = False  # the link leaves pmsync (Jira, Zendesk, Salesforce)
    sortable: bool = True


@dataclass
class Table:
    """Rows under columns, sorted and paged by the query string's `<prefix>sort|dir|page`."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: list[Row]
    prefix: str = ""
    page_size: int = 50
    empty: str = "Nothing to show."
    note: str = ""
    sort: str | None = None
    descending: bool = True
    page: int = 1
    forms: Callable[[Row], Any] | None = field(default=None, repr=False)

    def arrange(self, args: Mapping[str, str], default_sort: str | None, descending: bool) -> None:
        """Sort and page from the query string (unknown values fall back to the defaults)."""
        keys = {c.key: c for c in self.columns if c.sortable}
        wanted = args.get(f"{self.prefix}sort", default_sort or "")
        self.sort = wanted if wanted in keys else default_sort
        direction = args.get(f"{self.prefix}dir", "")
        self.descending = descending if direction not in ("asc", "desc") else direction == "desc"
        if self.sort is not None:
            self.rows = sort_rows(self.rows, self.sort, self.descending)
        try:
            self.page = max(1, int(args.get(f"{self.prefix}page", "1")))
        except ValueError:
            self.page = 1
        self.page = min(self.page, self.pages)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.rows) / self.page_size))

    @property
    def shown(self) -> list[Row]:
        start = (self.page - 1) * self.page_size
        return self.rows[start : start + self.page_size]

    def csv(self) -> str:
        """Every row, values unformatted (numbers as numbers, lists joined with '; ')."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([csv_value(row.get(c.key)) for c in self.columns])
        return buffer.getvalue()


def sort_rows(rows: list[Row], key: str, descending: bool) -> list[Row]:
    """Rows by one column; empty values always last, numbers before text when mixed."""
    present = [r for r in rows if r.get(key) not in (None, "", ())]
    missing = [r for r in rows if r.get(key) in (None, "", ())]
    present.sort(key=lambda r: _sort_key(r.get(key)), reverse=descending)
    return present + missing


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, list | tuple):
        return (1, "; ".join(map(str, value)).lower())
    return (1, str(value).lower())


def csv_value(value: Any) -> Any:
    """A cell for CSV; text that a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = "; ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def show(value: Any, kind: Kind) -> str:
    """A cell as text for the page."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return sparkline(value) if kind == "trend" else ", ".join(str(v) for v in value)
    return _show_scalar(value, kind)


def _show_scalar(value: Any, kind: Kind) -> str:
    if kind in _NUMERIC and isinstance(value, int | float):
        return f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if kind in ("date", "datetime") and isinstance(value, str):
        return value[:10] if kind == "date" else value[:16].replace("T", " ")
    return str(value)


def sparkline(counts: Sequence[int]) -> str:
    """A row of block characters, one per week, scaled to the row's busiest week."""
    top = max(counts, default=0)
    if top <= 0:
        return SPARKS[0] * len(counts)
    return "".join(SPARKS[min(len(SPARKS) - 1, round(c / top * (len(SPARKS) - 1)))] for c in counts)
