"""Tables that fit the terminal without cutting what matters.

Each column says how it may give way when the terminal is narrow: a *whole* column (issue
keys, stream names, numbers, times) is never cut or folded; a text column folds onto more
lines, down to its narrowest readable width; columns with a `drop` rank leave the table, lowest
rank first, when folding is not enough. Whatever is left is laid out with explicit widths, so
the renderer never has to shrink a column on its own (which would cut keys and numbers).

Piped output is not folded at all unless $COLUMNS asks for a width: each row stays on one line,
ready for grep and for pasting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

GAP = 3  # between two columns: a space of padding on each side of a blank separator


@dataclass(frozen=True)
class Col:
    """How one column is shown, and how it gives way on a narrow terminal."""

    header: str
    whole: bool = False  # never cut or folded: keys, names, numbers, times
    drop: int | None = None  # leaves the table when space runs out, lowest first; None: stays
    min_width: int = 14  # a folding column is never narrower (unless its content is)
    justify: Literal["left", "right"] = "left"


def number(header: str, *, drop: int | None = None) -> Col:
    """A right-aligned figure, never cut."""
    return Col(header, whole=True, drop=drop, justify="right")


def key(header: str, *, drop: int | None = None) -> Col:
    """An identifier (issue key, stream, ticket id), never cut."""
    return Col(header, whole=True, drop=drop)


def text(header: str, *, drop: int | None = None, min_width: int = 14) -> Col:
    """Free text that folds onto more lines."""
    return Col(header, drop=drop, min_width=min_width)


def available_width(console: Console) -> int | None:
    """The width tables may use: the terminal's, $COLUMNS when piped, or None (no limit)."""
    if console.is_terminal:
        return console.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


@dataclass(frozen=True)
class Layout:
    """The columns kept (by index) and the width of each."""

    kept: list[int]
    widths: list[int]

    @property
    def total(self) -> int:
        return sum(self.widths) + GAP * max(0, len(self.widths) - 1)


def fit(columns: Sequence[Col], rows: Sequence[Sequence[str]], width: int | None) -> Layout:
    """Choose the columns to show and their widths for a table at most `width` cells wide.

    Space is found in this order: headers of whole columns wrap onto two lines, text columns
    fold down to their narrowest width, then columns leave by their `drop` rank.
    """
    cells = [max([0, *(_widest_line(row[i]) for row in rows)]) for i in range(len(columns))]
    natural = [max(c, cell_len(col.header), 1) for col, c in zip(columns, cells, strict=True)]
    kept = list(range(len(columns)))
    if width is None:
        return Layout(kept, natural)
    narrowest = [
        max(c if col.whole else min(c, col.min_width), _longest_word(col.header), 1)
        for col, c in zip(columns, cells, strict=True)
    ]
    while _needed(kept, narrowest) > width:
        droppable = [i for i in kept if columns[i].drop is not None]
        if not droppable:
            break  # only unbreakable columns left: wider than the terminal, never cut
        # an empty column goes first, then by rank
        kept.remove(min(droppable, key=lambda i: (cells[i] > 0, columns[i].drop, -i)))
    widths = list(natural)
    excess = _needed(kept, widths) - width
    for i in kept:  # wrap the headers of whole columns first: one more header line at most
        if columns[i].whole and excess > 0:
            saved = min(excess, widths[i] - narrowest[i])
            widths[i] -= saved
            excess -= saved
    while excess > 0:
        foldable = [i for i in kept if widths[i] > narrowest[i]]
        if not foldable:
            break
        widest = max(foldable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return Layout(kept, [widths[i] for i in kept])


def _needed(kept: list[int], widths: Sequence[int]) -> int:
    return sum(widths[i] for i in kept) + GAP * max(0, len(kept) - 1)


def _widest_line(value: str) -> int:
    return max((cell_len(line) for line in value.splitlines()), default=0)


def _longest_word(value: str) -> int:
    return max((cell_len(word) for word in value.split()), default=0)


def build(
    columns: Sequence[Col],
    rows: Sequence[Sequence[str]],
    width: int | None,
) -> tuple[Table, int]:
    """The table laid out for `width`, and the width to print it at."""
    layout = fit(columns, rows, width)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )
    for index, col_width in zip(layout.kept, layout.widths, strict=True):
        col = columns[index]
        table.add_column(
            col.header,
            width=col_width,
            justify=col.justify,
            overflow="fold",
            no_wrap=width is None,
        )
    for row in rows:
        table.add_row(*(row[i] for i in layout.kept))
    return table, max(layout.total, width or 0)


def print_table(
    console: Console,
    columns: Sequence[Col],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
) -> None:
    """Print rows (already text) under `columns`, fitted to the console.

    Rendered at the layout's own width (the console would otherwise clamp it to its idea of
    the terminal), without trailing blanks.
    """
    if title:
        console.print(Text(title, style="bold"), soft_wrap=True)
    table, at = build(columns, rows, available_width(console))
    lines = [
        _rstrip(line) for line in console.render_lines(table, console.options.update_width(at))
    ]
    while lines and not lines[-1]:
        lines.pop()
    segments: list[Segment] = []
    for line in lines:
        segments.extend(line)
        segments.append(Segment.line())
    console.print(Segments(segments), soft_wrap=True, end="")


def _rstrip(line: list[Segment]) -> list[Segment]:
    """A rendered line without its trailing blanks."""
    kept = list(line)
    while kept and not kept[-1].text.rstrip():
        kept.pop()
    if kept:
        last = kept[-1]
        kept[-1] = Segment(last.text.rstrip(), last.style, last.control)
    return kept


def renamed(col: Col, header: str) -> Col:
    """The same column under another header."""
    return replace(col, header=header)
