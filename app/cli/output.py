"""Where commands print: consoles, JSON, tables and progress, shared by every command."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from pmsync.sync.links.report import Section

# Piped output is read by people too (ops save it, paste it): give tables room.
_WIDTH = None if sys.stdout.isatty() else max(int(os.environ.get("COLUMNS", "0") or 0), 140)
# Markup is off: ticket subjects, field names and error texts may contain [brackets]. Styled
# lines pass markup=True and escape what they interpolate.
out = Console(highlight=False, soft_wrap=True, width=_WIDTH, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "..."


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


def print_section(section: Section) -> None:
    table = Table(*section.columns, title=section.title)
    for row in section.rows:
        table.add_row(*(f"{v:,.0f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


@contextmanager
def progress(enabled: bool) -> Iterator[Callable[[Any], None] | None]:
    """A live line per stream on a terminal (records read and written); nothing otherwise."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[tuple[str, str], Any] = {}

        def on_page(result: Any) -> None:
            slot = (result.connector, result.stream)
            text = (
                f"{result.connector}.{result.stream}: {result.records_read:,} read, "
                f"{result.inserted + result.updated:,} written"
            )
            if slot not in tasks:
                tasks[slot] = bar.add_task(text, total=None)
            bar.update(tasks[slot], description=text)

        yield on_page
