"""`pmsync demo`: the whole loop on a generated company, printed for a first-time user."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from pmsync.logs import configure_logging

from .context import handle_errors
from .output import err, out, progress
from .sections import print_section

if TYPE_CHECKING:
    from pmsync.app.demo import DemoRun

DEFAULT_DIR = "pmsync-demo"
TABLE_COLUMNS = ("issue", "summary", "status", "arr", "accounts", "tickets", "top_accounts")
# The other voices' figures, shown (before the top accounts) where the demo has them; the
# declared scores join them.
VOICE_COLUMNS = ("pipeline", "detractor_arr")


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="Where the demo's config, store and mappings go.",
)
@click.option("--seed", type=int, default=None, help="Generate a different company.")
@click.option("--top", default=10, show_default=True, help="Issues to show.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="Keep the simulators up afterwards: change their world, then try sync, plan, apply "
    "and run against them.",
)
@handle_errors
def demo_command(directory: str, seed: int | None, top: int, keep_running: bool) -> None:
    """Run pmsync end to end on a generated company, with no credentials and no network.

    Starts simulated Salesforce, Zendesk, Jira and Pendo, syncs them, links feedback to
    accounts and issues, writes customer ARR back onto the Jira issues, and prints the top
    issues by revenue at stake.
    """
    from pmsync.app.demo import run_demo

    configure_logging("error", "console")
    with progress(enabled=err.is_terminal) as on_page:
        run = run_demo(
            Path(directory),
            seed=seed,
            on_step=lambda step: err.print(f"[dim]...[/] {escape(step)}", markup=True),
            on_page=on_page,
        )
    config = shlex.quote(str(Path(directory) / run.demo.config_path.name))
    try:
        _print_demo(run, top)
        _print_next(run, directory, config, seed, keep_running)
        if keep_running:
            _keep_running(run, config)
    finally:
        run.close()


def _print_demo(run: DemoRun, top: int) -> None:
    from pmsync.sync.links.report import top_issues

    assert run.derived is not None
    counts = run.summary()
    out.print(
        f"\n[bold]A generated company[/], as pmsync synced it: {counts.accounts:,} Salesforce "
        f"accounts, {counts.tickets:,} Zendesk tickets, {counts.issues:,} Jira issues, product "
        "usage from Pendo.",
        markup=True,
    )
    gone = (
        f"; {counts.tombstones:,} deleted at the source, kept as tombstones"
        if counts.tombstones
        else ""
    )
    out.print(
        f"Synced {counts.records:,} records from {counts.streams} streams "
        f"({counts.streams_ok} ok){gone}."
    )
    _print_sync_trouble(run, counts.failed_streams)
    voices = run.derived.voices
    nps_accounts = len(voices.surveys.get("nps", {}))
    out.print(
        f"Heard {len(run.derived.world.opportunities):,} opportunities "
        f"({len(voices.pipeline):,} issues cited) and the latest NPS of {nps_accounts:,} "
        f"accounts; scored every asked-for issue by {', '.join(voices.scores) or 'no score'}."
    )
    out.print(
        f"Linked {counts.linked_to_account:,} of {counts.tickets:,} tickets to an account and "
        f"{counts.linked_to_issues:,} to Jira issues; {counts.to_review:,} links await review "
        "(`pmsync links review`)."
    )
    notes = f", and {counts.notes:,} notes on tickets whose issue shipped" if counts.notes else ""
    out.print(
        f"Wrote {counts.written:,} fields back onto {counts.targets:,} issues and accounts"
        f"{notes} ({counts.failed} failed).\n"
    )
    section = top_issues(run.derived, next(iter(run.derived.rollups)), top)
    heard = [c for c in section.columns if c in VOICE_COLUMNS or c in run.derived.voices.scores]
    print_section(
        out,
        section,
        only=(*TABLE_COLUMNS[:-1], *heard, TABLE_COLUMNS[-1]),
        title="Top issues by customer ARR (every figure is written onto its Jira issue)",
    )


def _print_sync_trouble(run: DemoRun, failed: tuple[tuple[str, str], ...]) -> None:
    """Failed streams and dead letters, before any count they make smaller."""
    from .sync_commands import dead_letter_note

    config = shlex.quote(str(run.demo.config_path))
    for stream, why in failed:
        out.print(f"[red]{escape(stream)} failed:[/] {escape(why)}", markup=True)
    note = dead_letter_note(run.synced, f"pmsync -c {config} dead-letters")
    if note:
        out.print(f"[yellow]{escape(note)}[/]", markup=True)


def _print_next(
    run: DemoRun, directory: str, config: str, seed: int | None, keep_running: bool
) -> None:
    """Where things are and what to try, in the paths the user typed."""
    demo = run.demo
    shown = Path(directory)
    out.print(
        f"\nDone in {run.seconds['total']:.1f} s. The data is in "
        f"{shown / demo.store_path.name} (SQLite); the configuration in {config}, the mappings "
        f"in {shown / demo.mappings_dir.name}/.",
        markup=False,
    )
    out.print(
        f"\nOpen the web view on the demo's data: pmsync -c {config} serve\n"
        "then browse http://127.0.0.1:9474/ (issues by revenue, accounts, product areas, "
        "review queue, freshness; Ctrl-C stops it).",
        markup=False,
    )
    if keep_running:
        return
    again = ["pmsync", "demo"]
    if directory != DEFAULT_DIR:
        again += ["--dir", directory]
    if seed is not None:
        again += ["--seed", str(seed)]
    again.append("--keep-running")
    _print_commands(
        "\nTry next:",
        [
            (f"pmsync -c {config} report", "issues, scores, areas, unlinked"),
            (f"pmsync -c {config} plan", "what would change; empty scores and why"),
            (f"pmsync -c {config} links review", "what rules left open"),
            (f"pmsync -c {config} status", "each stream's state"),
            (shlex.join(again), "change the world, then plan"),
            (f"pmsync -c {config} mappings validate", "after editing mappings"),
        ],
    )


def _print_commands(title: str, commands: list[tuple[str, str]]) -> None:
    out.print(title, markup=False)
    width = max(len(command) for command, _why in commands)
    for command, why in commands:
        out.print(f"  {command.ljust(width)}  # {why}", markup=False)


def _keep_running(run: DemoRun, config: str) -> None:
    """Serve the simulators and take world changes typed here until `quit` or Ctrl-C."""
    from pmsync.app.demo import CHANGES

    _print_commands(
        "\nThe simulators keep running. In another shell:",
        [
            (f"pmsync -c {config} sync --once", "read what changed"),
            (f"pmsync -c {config} plan", "what would be written back"),
            (f"pmsync -c {config} apply", "write it, and close loops"),
            (f"pmsync -c {config} run", "or all of that every 30 s, as the daemon"),
        ],
    )
    _print_commands(
        "Change the world here (type a word and Enter):",
        [*((name, what) for name, what in CHANGES.items()), ("quit", "stop the simulators")],
    )
    with contextlib.suppress(KeyboardInterrupt):
        _read_changes(run, CHANGES)
    out.print("stopping the simulators", markup=False)


def _read_changes(run: DemoRun, changes: dict[str, Any]) -> None:
    while True:
        if sys.stdin.isatty():
            err.print("change> ", end="")
        line = sys.stdin.readline()
        if not line:  # no input to read (a pipe that ended, /dev/null): serve until Ctrl-C
            while True:
                time.sleep(3600)
        word = line.strip().lower()
        if word in ("quit", "exit", "q"):
            return
        if not word:
            continue
        if word not in changes:
            out.print(f"say one of: {', '.join([*changes, 'quit'])}", markup=False)
            continue
        try:
            change = run.change(word)
        except ValueError as exc:  # the world has nothing left to change that way
            out.print(f"nothing changed: {exc}", markup=False)
            continue
        out.print(f"changed: {change.summary}.", markup=False)
        out.print("Now `sync --once` then `plan` in the other shell (or wait for `run`).")


COMMANDS: tuple[click.Command, ...] = (demo_command,)
