"""How report sections read in a terminal: human column names and what gives way first.

The sections themselves (`pmsync.sync.links.report`) keep machine names (`arr`,
`top_accounts`) for CSV and JSON; this is only the table a person reads. Amounts show their
currency in the header; times show their day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .tables import Col, key, number, print_table, renamed, text

if TYPE_CHECKING:
    from pmsync.sync.links.report import Section

MONEY = frozenset({"arr", "arr_at_stake", "pipeline", "detractor_arr"})
DAYS = frozenset({"last_request", "created_at"})
LINK_KINDS = {"ticket_account": "account", "ticket_issue": "issue"}

# The other voices' figures: they leave a narrow table before the summary does.
VOICES: dict[str, Col] = {
    "pipeline": number("pipeline", drop=2),
    "pipeline_opportunities": number("deals", drop=0),
    "detractor_arr": number("detractor ARR", drop=1),
    "detractor_accounts": number("detractors", drop=0),
}

LAYOUTS: dict[str, dict[str, Col]] = {
    "issues": {
        "issue": key("issue"),
        "summary": text("summary", drop=3, min_width=16),
        "status": key("status", drop=2),
        "arr": number("ARR"),
        "accounts": number("accounts"),
        "tickets": number("tickets"),
        "top_accounts": text("top accounts", drop=1),
        "last_request": key("last request", drop=0),
        **VOICES,
    },
    "scores": {
        "issue": key("issue"),
        "summary": text("summary", drop=3, min_width=16),
        "status": key("status", drop=2),
        "arr": number("ARR"),
        "accounts": number("accounts"),
        **VOICES,
    },
    "areas": {
        "product_area": key("product area"),
        "tickets": number("tickets"),
        "accounts": number("accounts"),
        "arr": number("ARR"),
    },
    "unlinked": {
        "ticket": key("ticket"),
        "subject": text("subject", drop=3, min_width=16),
        "product_area": key("product area", drop=1),
        "account": text("account", drop=2, min_width=12),
        "arr": number("account ARR"),
        "created_at": key("created", drop=0),
    },
    "review": {
        "ticket": key("ticket"),
        "subject": text("subject", drop=0),
        "kind": key("link"),
        "rule": key("rule", drop=1),
        "reason": key("reason"),
        "detail": text("detail", drop=2, min_width=16),
        "candidates": text("candidates", drop=1),
        "arr_at_stake": number("ARR at stake"),
    },
}


def print_section(
    console: Console,
    section: Section,
    *,
    only: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print a section as a table fitted to the console (`only`: these columns, in order)."""
    layout = LAYOUTS.get(section.name, {})
    shown = only if only is not None else section.columns
    # One currency for the whole section: it goes into the amounts' headers.
    names = [n for n in shown if n != "currency" or section.currency is None]
    index = {name: section.columns.index(name) for name in names}
    columns = [
        _column(layout, name, section.currency, _numeric(section, index[name])) for name in names
    ]
    rows = [[_cell(name, row[index[name]]) for name in names] for row in section.rows]
    print_table(console, columns, rows, title=title or section.title)


def _numeric(section: Section, position: int) -> bool:
    """Whether a column holds only numbers (declared scores, say): those are never folded."""
    values = [row[position] for row in section.rows if row[position] is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _column(layout: dict[str, Col], name: str, currency: str | None, numeric: bool) -> Col:
    """How a column shows: its layout, else a number (dropping early) or folding text."""
    header = name.replace("_", " ")
    col = layout.get(name) or (number(header, drop=1) if numeric else text(header))
    if name in MONEY and currency:
        return renamed(col, f"{col.header} ({currency})")
    return col


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if name in DAYS and isinstance(value, str):
        return value[:10]  # an ISO time: its day
    if name == "kind":
        return LINK_KINDS.get(str(value), str(value))
    return str(value)
