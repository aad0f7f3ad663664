"""`pmsync demo`: the whole loop on a generated company, printed for a first-time user."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from pmsync.logs import configure_logging

from .context import handle_errors
from .output import err, out, progress


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="pmsync-demo",
    show_default=True,
    help="Where the demo's config, store and mappings go.",
)
@click.option("--seed", type=int, default=None, help="Generate a different company.")
@click.option("--top", default=10, show_default=True, help="Issues to show.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="Keep the simulators up afterwards, to try plan, apply and run against them.",
)
@handle_errors
def demo_command(directory: str, seed: int | None, top: int, keep_running: bool) -> None:
    """Run pmsync end to end on a generated company, with no credentials and no network.

    Starts simulated Salesforce, Zendesk, Jira and Pendo, syncs them, links feedback to
    accounts and issues, writes customer ARR back onto the Jira issues, and prints the top
    issues by revenue at stake.
    """
    from pmsync.app.demo import run_demo
    from pmsync.sync.links.report import top_issues

    configure_logging("error", "console")
    with progress(enabled=err.is_terminal) as on_page:
        run = run_demo(
            Path(directory),
            seed=seed,
            on_step=lambda step: err.print(f"[dim]...[/] {step}", markup=True),
            on_page=on_page,
        )
    try:
        _print_demo(run, top_issues, top)
        if keep_running:
            _keep_running(run)
    finally:
        run.close()


def _print_demo(run: Any, top_issues: Any, top: int) -> None:
    demo, derived, applied = run.demo, run.derived, run.applied
    records = sum(r.records_read for r in run.synced)
    company = demo.company
    out.print(
        f"\n[bold]A generated company[/]: {len(company.accounts)} Salesforce accounts, "
        f"{len(company.tickets)} Zendesk tickets from {len(company.requesters)} people, "
        f"{len(company.issues)} Jira issues, product usage in Pendo.",
        markup=True,
    )
    out.print(
        f"Synced {records:,} records from {len(run.synced)} streams "
        f"({sum(1 for r in run.synced if r.status == 'ok')} ok)."
    )
    linked = len(derived.links.account_of)
    asking = len(derived.links.issues_of)
    review = sum(1 for u in derived.links.unresolved if u.kind == "ticket_account")
    out.print(
        f"Linked {linked:,} of {len(derived.world.tickets):,} tickets to an account and "
        f"{asking:,} to Jira issues; {review} await review (`pmsync links review`)."
    )
    voices = derived.voices
    nps_accounts = len(voices.surveys.get("nps", {}))
    out.print(
        f"Heard {len(derived.world.opportunities):,} opportunities ({len(voices.pipeline):,} "
        f"issues cited) and the latest NPS of {nps_accounts:,} accounts; scored every asked-for "
        f"issue by {', '.join(voices.scores) or 'no score'}."
    )
    targets = {(w.connector, w.target_key) for w in applied.applied}
    out.print(
        f"Wrote {len(applied.applied):,} fields back onto {len(targets):,} issues and "
        f"accounts ({len(applied.failed)} failed).\n"
    )
    section = top_issues(derived, next(iter(derived.rollups)), top)
    out.print(_demo_table(section))
    config = demo.config_path
    out.print(
        f"\nDone in {run.seconds['total']:.1f} s. The data is in {demo.store_path} (SQLite); "
        f"the configuration in {config}, the mappings in {demo.mappings_dir}.",
        markup=False,
    )
    out.print(
        f"\nOpen the web view on the demo's data: pmsync -c {config} serve\n"
        "then browse http://127.0.0.1:9474/ (issues by revenue, accounts, product areas, "
        "review queue, freshness; Ctrl-C stops it).",
        markup=False,
    )
    out.print("Try next:", markup=False)
    for line in (
        f"pmsync -c {config} report                 # issues, scores, product areas, unlinked",
        f"pmsync -c {config} plan                   # what would change; empty scores and why",
        f"pmsync -c {config} links review           # what the rules could not decide",
        f"pmsync -c {config} status                 # every stream's cursor and counts",
        "pmsync demo --keep-running                # then plan, apply, run against it",
        "edit the mappings, then `pmsync -c ... mappings validate`",
    ):
        out.print(f"  {line}", markup=False)


# The other voices and the scores, where the demo has them: column -> heading.
VOICE_HEADINGS = {
    "pipeline": "pipeline",
    "detractor_arr": "detractor ARR",
    "rice": "RICE",
    "priority": "priority",
}


def _demo_table(section: Any) -> Table:
    """The top issues with their customer ARR, pipeline, detractor ARR and scores."""
    extra = [c for c in VOICE_HEADINGS if c in section.columns]
    table = Table(
        "issue",
        "summary",
        "status",
        "customer ARR",
        "accounts",
        "tickets",
        *(VOICE_HEADINGS[c] for c in extra),
        "top accounts",
        title="Top issues by customer ARR, with pipeline at stake, detractor ARR and scores "
        "(all written onto each Jira issue)",
    )
    for values in section.as_dicts():
        table.add_row(
            values["issue"],
            str(values["summary"])[:32],
            values["status"],
            f"{values['arr']:,.0f} {values['currency']}",
            str(values["accounts"]),
            str(values["tickets"]),
            *(_figure(values[c]) for c in extra),
            values["top_accounts"],
        )
    return table


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _keep_running(run: Any) -> None:
    config = run.demo.config_path
    out.print(
        f"\nThe simulators keep running. In another shell: pmsync -c {config} plan "
        f"(or apply, run, check). Press Ctrl-C to stop.",
        markup=False,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out.print("stopping the simulators", markup=False)


COMMANDS: tuple[click.Command, ...] = (demo_command,)
