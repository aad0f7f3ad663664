"""Commands that show and perform the write-back plan."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from .context import Context, handle_errors, pass_context
from .output import emit_json, out


@click.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def plan_command(ctx: Context, as_json: bool) -> None:
    """Every write-back that would happen (target, field, old -> new); writes nothing."""
    runtime = ctx.runtime()
    try:
        # Derived and planned as `pmsync apply` (and the daemon) do, a chunk of targets at a
        # time: the plan shown is the one apply performs, and the whole World is held only
        # when a weighted score needs every issue at once.
        plan = runtime.plan_every_target()
        empty = runtime.empty_scores()  # from the stored rollups of every issue
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "plan_id": plan.plan_id,
                "writes": [w.as_dict() for w in plan.writes],
                "clearing": len(plan.clearing),
                "kept_human_edits": [w.as_dict() for w in plan.kept],
                "needs_confirmation": [t.__dict__ for t in plan.guard],
                "empty_scores": empty.as_dicts(),
            }
        )
        return
    _print_plan(plan)
    _print_empty_scores(empty.rows)


EMPTY_SCORES_SHOWN = 20


def _print_empty_scores(rows: list[tuple[Any, ...]]) -> None:
    """Scores left empty by a missing input without a default, and what is missing."""
    if not rows:
        return
    out.print(
        f"{len(rows)} score(s) left empty (an input is missing and has no default):",
        markup=False,
    )
    for issue, score, missing in rows[:EMPTY_SCORES_SHOWN]:
        out.print(f"  {issue} {score}: {missing}", markup=False)
    if len(rows) > EMPTY_SCORES_SHOWN:
        out.print(
            f"  ... and {len(rows) - EMPTY_SCORES_SHOWN} more (`pmsync plan --json` lists all)",
            markup=False,
        )


def _print_plan(plan: Any) -> None:
    for write in plan.writes:
        marker = "  (a person changed it; overwriting)" if write.human_edit else ""
        out.print(f"  {write.describe()}{marker}", markup=False)
    for write in plan.kept:
        out.print(
            f"  kept: {write.describe()} - a person changed it since pmsync wrote it", markup=False
        )
    targets = {(w.connector, w.target_key) for w in plan.writes}
    clearing = plan.clearing
    cleared = {(w.connector, w.target_key) for w in clearing}
    out.print(
        f"{len(plan.writes)} write(s) to {len(targets)} target(s), of which {len(clearing)} "
        f"clear figures of {len(cleared)} target(s) nobody asks for; "
        f"{len(plan.kept)} human edit(s) kept",
        markup=False,
    )
    for trip in plan.guard:
        out.print(
            f"[yellow]needs confirmation:[/] {escape(trip.writeback)} would change "
            f"{trip.changed} of {trip.eligible} targets ({trip.share:.0%}); "
            "run `pmsync apply --confirm`",
            markup=True,
        )


@click.command("apply")
@click.option(
    "--confirm",
    is_flag=True,
    help="Apply even when the plan changes more targets than writeback.max_change_share.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def apply_command(ctx: Context, confirm: bool, as_json: bool) -> None:
    """Perform the write-back plan (exactly what `pmsync plan` shows)."""
    runtime = ctx.runtime(create_store=True)
    try:
        with runtime.writeback_lock():
            # Planned as the daemon plans, a chunk of targets at a time: never the whole World.
            plan = runtime.plan_every_target()
            result = runtime.apply(plan, confirm=confirm)
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "plan_id": plan.plan_id,
                "applied": [w.as_dict() for w in result.applied],
                "failed": [{**w.as_dict(), "error": error} for w, error in result.failed],
            }
        )
    else:
        for write in result.applied:
            out.print(f"  done  {write.describe()}", markup=False)
        for write, error in result.failed:
            out.print(f"  FAIL  {write.describe()}: {error}", markup=False)
        out.print(f"{len(result.applied)} applied, {len(result.failed)} failed", markup=False)
    if result.failed:
        sys.exit(1)


COMMANDS: tuple[click.Command, ...] = (plan_command, apply_command)
