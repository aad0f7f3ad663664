"""Commands that read sources into the store and show how the streams fare."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pmsync.errors import ConfigError, PmsyncError

from .context import (
    EXIT_CONFIG,
    Context,
    handle_errors,
    pass_context,
    print_config_problems,
    print_error,
)
from .output import emit_json, err, out, progress, short, when

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

    runtime = ctx.runtime()
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
    table = Table(
        "stream",
        "status",
        "pages",
        "read",
        "new",
        "changed",
        "deleted",
        "dead letters",
        "seconds",
        "error",
    )
    for r in results:
        table.add_row(
            f"{r.connector}.{r.stream}",
            r.status,
            str(r.pages),
            str(r.records_read),
            str(r.inserted),
            str(r.updated),
            str(r.deleted),
            str(r.dead_letters),
            f"{r.seconds:.1f}",
            r.error or "",
        )
    out.print(table)


@click.command("run")
@pass_context
def run_command(ctx: Context) -> None:
    """Run as a service: sync every stream on its poll interval until SIGTERM.

    SIGHUP reloads the configuration and mappings (keeping the running ones if the new ones
    have problems). Serves /healthz, /readyz and /metrics (see [daemon] in the configuration);
    speaks systemd's notify protocol. Replicas on one PostgreSQL store share the connectors.
    """
    from pmsync.app.daemon.service import Daemon

    try:
        code = Daemon(ctx.config_path, log_level=ctx.log_level, log_format=ctx.log_format).run()
    except ConfigError as exc:
        print_config_problems(exc)
        sys.exit(EXIT_CONFIG)
    except PmsyncError as exc:
        print_error(exc)
        sys.exit(1)
    sys.exit(code)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def status_command(ctx: Context, as_json: bool) -> None:
    """Per stream: status, last success, cursor, record counts, last error."""
    from pmsync.app.status import stream_statuses

    runtime = ctx.runtime()
    try:
        slots = [(job.connector, job.spec.name) for job in runtime.jobs()]
        rows = stream_statuses(runtime.store, slots)
    finally:
        runtime.close()
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    table = Table(
        "stream",
        "status",
        "last success",
        "records",
        "tombstones",
        "dead letters",
        "cursor",
        "next attempt",
        "owner",
        "last error",
    )
    for row in rows:
        status = f"{row.status} ({row.failures}x)" if row.failures else row.status
        table.add_row(
            row.stream,
            status,
            when(row.last_success_at) or "never",
            str(row.records),
            str(row.tombstones),
            str(row.dead_letters),
            short(row.cursor or "", 40),
            when(row.next_attempt_at),
            row.owner or "",
            row.last_error or "",
        )
    out.print(table)


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
    table = Table("id", "stream", "key", "field", "reason", "since")
    for row in rows:
        table.add_row(
            str(row["id"]),
            f"{row['connector']}.{row['stream']}",
            row["record_key"] or "",
            row["field"] or "",
            row["reason"],
            str(row["created_at"]),
        )
    out.print(table)
    out.print(f"{len(rows)} dead letter(s)", markup=False)


COMMANDS: tuple[click.Command, ...] = (
    sync_command,
    run_command,
    status_command,
    dead_letters_command,
)
