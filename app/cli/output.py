"""Where commands print: consoles, JSON, tables and progress, shared by every command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.console import Console

# Markup is off: ticket subjects, field names and error texts may contain [brackets]. Styled
# lines pass markup=True and escape what they interpolate. Tables fit themselves (tables.py):
# to the terminal, or to $COLUMNS, or one line per row when piped.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def emit_json(data: Any) -> None:
    """Print `data` as indented JSON. orjson's bytes go out as they are: decoding a large plan's
    JSON (tens of MiB) would hold a second copy of it."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str))


def shown(value: Any) -> str:
    """A value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


def cursor_text(cursor: str | None) -> str:
    """A stored cursor as `name=value` pairs without its empty parts (it folds between pairs)."""
    if not cursor:
        return ""
    try:
        value = orjson.loads(cursor)
    except orjson.JSONDecodeError:
        return cursor
    if not isinstance(value, dict):
        return cursor
    return " ".join(
        f"{name}={part if isinstance(part, str) else orjson.dumps(part).decode()}"
        for name, part in value.items()
        if part is not None
    )


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """A moment as a person reads it in a table: `12s ago`, `3m ago`, `in 2h`, `5d ago`."""
    if moment is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    span = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if span >= size:
            amount = f"{span // size}{unit}"
            break
    else:
        amount = f"{span}s"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


@contextmanager
def progress(enabled: bool) -> Iterator[Callable[[Any], None] | None]:
    """A live line per stream on a terminal (records read and written); nothing otherwise."""
    if not enabled:
        yield None
        return
    # rich's live display loads only for a sync on a terminal: `status` never shows one.
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
