"""Tables fit 80 columns by folding and dropping the less important columns, never by cutting
keys or numbers; piped output keeps each row on one line."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pmsync.app.cli.tables import Col, fit, key, number, print_table, text

COLUMNS = [
    key("issue"),
    text("summary", drop=3, min_width=16),
    key("status", drop=2),
    number("customer ARR (USD)"),
    number("accounts"),
    number("tickets"),
    text("top accounts", drop=1),
    key("last request", drop=0),
]
ROWS = [
    [
        "MOBILE-1234",
        "Dark mode in the mobile app for large accounts with many words in the summary",
        "In Progress",
        "137,467,905",
        "82",
        "1,150",
        "Westfield Telecom, Westfield Robotics, Cyberdyne Systems",
        "2026-11-25",
    ],
    [
        "CORE-5",
        "Offline mode",
        "Done",
        "9,949,500",
        "15",
        "15",
        "Acme Telecom",
        "2026-10-01",
    ],
]


def render(columns: list[Col], rows: list[list[str]]) -> str:
    console = Console(file=io.StringIO(), highlight=False)
    print_table(console, columns, rows, title="Top issues")
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_at_80_columns_keys_and_numbers_stay_whole_and_text_folds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    output = render(COLUMNS, ROWS)
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 80, output
    for whole in ("MOBILE-1234", "137,467,905", "9,949,500", "1,150", "CORE-5"):
        assert any(whole in line for line in lines), (whole, output)
    assert "…" not in output
    assert "Dark mode in the" in output  # the summary folds onto several lines
    assert "last request" not in output  # the least important column left first
    assert "2026-11-25" not in output


def test_columns_leave_by_rank_and_empty_ones_first() -> None:
    natural = fit(COLUMNS, ROWS, None)
    assert natural.kept == list(range(len(COLUMNS)))
    narrow = fit(COLUMNS, ROWS, 80)
    assert [COLUMNS[i].header for i in narrow.kept] == [
        "issue",
        "summary",
        "status",
        "customer ARR (USD)",
        "accounts",
        "tickets",
    ]
    assert narrow.total <= 80
    narrower = fit(COLUMNS, ROWS, 66)
    assert [COLUMNS[i].header for i in narrower.kept] == [
        "issue",
        "summary",
        "customer ARR (USD)",
        "accounts",
        "tickets",
    ]
    empty_last = [[*row[:-1], ""] for row in ROWS]
    columns = [*COLUMNS[:-1], key("last request", drop=5)]  # ranked high, but empty
    kept = fit(columns, empty_last, 100).kept
    assert 6 not in fit(columns, ROWS, 100).kept  # with content, top accounts leaves instead
    assert len(COLUMNS) - 1 not in kept
    assert 6 in kept  # top accounts stays: the empty column made room


def test_a_header_wraps_before_any_column_leaves() -> None:
    columns = [key("stream"), number("dead letters"), text("cursor", drop=0, min_width=10)]
    rows = [["zendesk.tickets", "0", "start_time=1"]]
    layout = fit(columns, rows, 40)
    assert layout.kept == [0, 1, 2]
    assert layout.widths[1] == len("letters")  # "dead letters" wraps over two lines


def test_never_cut_even_when_the_whole_columns_alone_are_too_wide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    output = render(COLUMNS, ROWS)
    assert "MOBILE-1234" in output
    assert "137,467,905" in output
    assert "customer" in output
    assert "…" not in output


def test_piped_output_keeps_each_row_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    output = render(COLUMNS, ROWS)
    lines = output.splitlines()
    assert lines[0] == "Top issues"
    assert len(lines) == 2 + 1 + len(ROWS)  # title, header, rule, one line per row
    assert ROWS[0][1] in lines[3]  # the long summary, whole, on its row's line
    assert ROWS[0][6] in lines[3]
    assert all(line == line.rstrip() for line in lines)
