"""Commands that read sources into the store and show how the streams fare."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from pmsync.errors import ConfigError, PmsyncError, StoreBusy
from pmsync.gcpolicy import bulk_allocation, run_on_system_malloc

from .context import (
    EXIT_CONFIG,
    Context,
    handle_errors,
    pass_context,
    print_config_problems,
    print_error,
)
from .output import age, cursor_text, emit_json, err, out, progress, when
from .tables import key, number, print_table, text

if TYPE_CHECKING:
    from pmsync.app.status import StreamStatus, TaskStatus

# ---- syncing ------------------------------------------------------------------------------


@click.command("sync")
@click.option(
    "--once", is_flag=True, help="Run one cycle and exit (default: repeat every poll interval)."
)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help="Only this stream (connector.stream, stream or connector); repeatable.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Re-read from the beginning, then run the stream's census: records the source no "
    "longer has are tombstoned.",
)
@click.option(
    "--sweep/--no-sweep",
    default=None,
    help="Force (or skip) the id-only delete sweep; default: when due (a full refresh always "
    "runs its census).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@pass_context
@handle_errors
def sync_command(
    ctx: Context,
    once: bool,
    streams: tuple[str, ...],
    full_refresh: bool,
    sweep: bool | None,
    as_json: bool,
) -> None:
    """Read every mapped stream from its stored cursor into the store.

    Connectors a running `pmsync run` daemon owns are skipped (it syncs them).
    """
    from pmsync.app.daemon.leases import cli_ownership

    runtime = ctx.runtime(create_store=True)
    try:
        while True:
            selected = [job.qualified for job in runtime.jobs(streams)]
            owners = sorted({name.split(".", 1)[0] for name in selected})
            with (
                cli_ownership(runtime.store.engine, owners) as held,
                progress(enabled=not as_json and err.is_terminal) as on_page,
            ):
                for skipped in sorted(set(owners) - held):
                    err.print(
                        f"[yellow]skipped {escape(skipped)}:[/] a running pmsync daemon owns it",
                        markup=True,
                    )
                chosen = [name for name in selected if name.split(".", 1)[0] in held]
                with bulk_allocation():
                    results = (
                        runtime.run_once(
                            chosen, full_refresh=full_refresh, sweep=sweep, on_page=on_page
                        )
                        if chosen
                        else []
                    )
            _print_results(results, as_json)
            failed = [r for r in results if r.status == "failed"]
            if once:
                sys.exit(1 if failed else 0)
            full_refresh = False
            interval = min(
                (
                    s.poll_interval.total_seconds()
                    for s in runtime.config.connectors.values()
                    if s.enabled
                ),
                default=300.0,
            )
            time.sleep(interval)
    finally:
        runtime.close()


def _print_results(results: Sequence[Any], as_json: bool) -> None:
    if as_json:
        emit_json([{**r.__dict__, "written": r.written} for r in results])
        return
    columns = [
        key("stream"),
        key("status"),
        number("pages", drop=0),
        number("read"),
        number("new"),
        number("changed"),
        number("deleted"),
        number("dead letters"),
        number("seconds", drop=1),
    ]
    rows = [
        [
            f"{r.connector}.{r.stream}",
            r.status,
            f"{r.pages:,}",
            f"{r.records_read:,}",
            f"{r.inserted:,}",
            f"{r.updated:,}",
            f"{r.deleted:,}",
            f"{r.dead_letters:,}",
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    print_table(out, columns, rows)
    _print_errors((f"{r.connector}.{r.stream}", r.error) for r in results)
    parked = dead_letter_note(results)
    if parked:
        out.print(parked, markup=False)


def dead_letter_note(results: Iterable[Any], command: str = "pmsync dead-letters") -> str:
    """'N records went to dead letters (stream n, ...)', naming where to look; '' for none."""
    counts = [(f"{r.connector}.{r.stream}", r.dead_letters) for r in results if r.dead_letters]
    if not counts:
        return ""
    total = sum(n for _stream, n in counts)
    streams = ", ".join(f"{stream} {n:,}" for stream, n in counts)
    noun = "record" if total == 1 else "records"
    return (
        f"{total:,} {noun} could not be mapped and went to dead letters ({streams}); "
        f"`{command}` shows each field and reason"
    )


def _print_errors(errors: Iterable[tuple[str, str | None]]) -> None:
    """Errors under the table, whole: a table cell would fold them into a narrow column."""
    for stream, error in errors:
        if error:
            out.print(f"[red]{escape(stream)}:[/] {escape(error)}", markup=True)


@click.command("run")
@pass_context
def run_command(ctx: Context) -> None:
    """Run as a service: sync every stream on its poll interval until SIGTERM.

    SIGHUP reloads the configuration and mappings (keeping the running ones if the new ones
    have problems). Serves /healthz, /readyz and /metrics (see [daemon] in the configuration);
    speaks systemd's notify protocol. Replicas on one PostgreSQL store share the connectors.
    """
    from .main import started_as_program

    if started_as_program():
        run_on_system_malloc()  # returns at once when it already runs so (or PYTHONMALLOC is set)
    from pmsync.app.daemon.service import Daemon

    daemon = Daemon(
        ctx.config_path,
        log_level=ctx.log_level,
        log_format=ctx.log_format,
        on_started=_announce if err.is_terminal else None,
    )
    try:
        code = daemon.run()
    except ConfigError as exc:
        print_config_problems(exc)
        sys.exit(EXIT_CONFIG)
    except StoreBusy as exc:  # restarting would not help either: systemd must not loop
        print_error(exc)
        sys.exit(EXIT_CONFIG)
    except PmsyncError as exc:
        print_error(exc)
        sys.exit(1)
    sys.exit(code)


def _announce(started: Any) -> None:
    """On a terminal, say what runs and where it listens (logs are for machines)."""
    where = (
        f"; health and metrics on {started.http} (/healthz, /readyz, /metrics)"
        if started.http
        else ""
    )
    if started.web:
        where += f"; the web view on {started.web}"
    err.print(
        f"pmsync runs {_count(len(started.connectors), 'connector')} "
        f"({', '.join(started.connectors)}), {_count(started.streams, 'stream')}{where}. "
        "Ctrl-C stops it; --log-level info shows each cycle.",
        markup=False,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def status_command(ctx: Context, as_json: bool) -> None:
    """Per stream: status, last success, cursor, record counts, last error; then each
    connector's write-back and each sweep: last success, failures in a row, last error."""
    rows, tasks = _read_status(ctx)
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    columns = [
        key("stream"),
        key("status"),
        key("last success"),
        number("records"),
        number("deleted"),
        number("dead letters"),
        key("next attempt", drop=2),
        text("cursor", drop=1, min_width=20),
        text("owner", drop=0),
    ]
    table = []
    for row in rows:
        status = f"{row.status} ({row.failures}x)" if row.failures else row.status
        table.append(
            [
                row.stream,
                status,
                age(row.last_success_at) or "never",
                f"{row.records:,}",
                f"{row.tombstones:,}",
                f"{row.dead_letters:,}",
                _next_attempt(row.next_attempt_at),
                cursor_text(row.cursor),
                row.owner or "",
            ]
        )
    print_table(out, columns, table)
    _print_errors((row.stream, row.last_error) for row in rows)
    if tasks:
        _print_tasks(tasks)


def _read_status(ctx: Context) -> tuple[list[StreamStatus], list[TaskStatus]]:
    """The streams' and tasks' state. The streams come from the configuration and mappings:
    no connector module is imported. A configuration beyond doubt and a current store are
    read without pydantic or SQLAlchemy (`Context.glance`); anything else is loaded in full,
    which names every problem and upgrades an older store."""
    from pmsync.app.glance import current_state_reader, require_store
    from pmsync.app.status import stream_statuses, task_statuses

    seen = ctx.glance()
    if seen is not None:
        require_store(seen.store_url, seen.path, url_written=seen.store_url_written)
        with current_state_reader(seen.store_url) as reader:
            if reader is not None:
                connectors = sorted({c for c, _s in seen.slots})
                return stream_statuses(reader, seen.slots), task_statuses(reader, connectors)
    runtime = ctx.runtime(full_check=False)
    try:
        slots = runtime.slots()
        with runtime.state_reader() as store:
            rows = stream_statuses(store, slots)
            tasks = task_statuses(store, sorted({c for c, _s in slots}))
    finally:
        runtime.close()
    return rows, tasks


def _print_tasks(tasks: Sequence[Any]) -> None:
    """Write-backs and sweeps under the streams, their errors under them while failing."""
    out.print()
    columns = [
        key("write-back or sweep"),
        key("status"),
        key("last success"),
        key("next attempt", drop=0),
    ]
    table = [
        [
            task.name,
            f"failing ({task.failures}x)" if task.failures else "ok",
            age(task.last_success_at) or "never",
            _next_attempt(task.next_attempt_at),
        ]
        for task in tasks
    ]
    print_table(out, columns, table)
    _print_errors((task.name, task.last_error) for task in tasks if task.failures)


def _next_attempt(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return "due" if moment <= datetime.now(UTC) else age(moment)


@click.command("dead-letters")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved ones.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with payloads).")
@pass_context
@handle_errors
def dead_letters_command(ctx: Context, include_resolved: bool, as_json: bool) -> None:
    """Records that failed their mapping: which field, why, and the payload."""
    runtime = ctx.runtime()
    rows = runtime.store.dead_letter_rows(include_resolved=include_resolved)
    runtime.close()
    if as_json:
        emit_json(rows)
        return
    print_table(
        out,
        [
            key("id"),
            key("stream"),
            key("key"),
            key("field", drop=1),
            text("reason", min_width=20),
            key("since", drop=0),
        ],
        [
            [
                str(row["id"]),
                f"{row['connector']}.{row['stream']}",
                row["record_key"] or "",
                row["field"] or "",
                row["reason"],
                when(row["created_at"]),
            ]
            for row in rows
        ],
    )
    out.print(f"{len(rows)} dead letter(s)", markup=False)


COMMANDS: tuple[click.Command, ...] = (
    sync_command,
    run_command,
    status_command,
    dead_letters_command,
)
