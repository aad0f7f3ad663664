"""Commands that show what the store knows: link review and the demand report."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from pmsync.errors import PmsyncError

from .context import Context, WholeHelpGroup, handle_errors, pass_context
from .output import emit_json, err, out
from .sections import print_section

# ---- links and reports --------------------------------------------------------------------


@click.group("links", cls=WholeHelpGroup)
def links_group() -> None:
    """How tickets link to accounts and issues."""


@links_group.command("review")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def links_review(ctx: Context, as_json: bool) -> None:
    """Ambiguous and missing matches by revenue at stake; resolve them in the overrides file."""
    from pmsync.sync.links.report import review_queue

    runtime = ctx.runtime()
    derived = runtime.derive()
    section = review_queue(derived)
    overrides = runtime.mappings.overrides_path
    runtime.close()
    if as_json:
        emit_json(
            {"review": section.as_dicts(), "override_problems": [str(p) for p in derived.problems]}
        )
        return
    print_section(out, section)
    for problem in derived.problems:
        err.print(f"[yellow]override ignored:[/] {escape(str(problem))}", markup=True)
    where = overrides or "the file named by links.overrides in your mappings"
    out.print(f"{len(section.rows)} to review; decide them in {where}", markup=False)


@click.command("report")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same as --format json).")
@click.option(
    "--section",
    "sections",
    multiple=True,
    type=click.Choice(["issues", "scores", "areas", "unlinked"]),
    help="Only these sections (repeatable); CSV prints one section per run.",
)
@click.option("--top", default=20, show_default=True, help="Rows in the ranked sections.")
@click.option("--rollup", default=None, help="Which declared rollup ranks the issues.")
@click.option(
    "--score", "score", default=None, help="Which declared score ranks the scores section."
)
@pass_context
@handle_errors
def report_command(
    ctx: Context,
    fmt: str,
    as_json: bool,
    sections: tuple[str, ...],
    top: int,
    rollup: str | None,
    score: str | None,
) -> None:
    """Top issues by revenue at stake (with pipeline, detractor ARR and scores where there are
    any), issues by priority score, product areas by demand, and unlinked feedback."""
    if as_json:
        if fmt not in ("table", "json"):
            raise click.UsageError(f"--json and --format {fmt} ask for two formats; choose one")
        fmt = "json"
    from pmsync.sync.links.report import (
        product_areas,
        ranked_by_score,
        top_issues,
        unlinked_feedback,
    )

    runtime = ctx.runtime()
    derived = runtime.derive()
    runtime.close()
    name = rollup or next(iter(derived.rollups))
    if name not in derived.rollups:
        raise PmsyncError(f"no rollup '{name}' (rollups: {', '.join(derived.rollups)})")
    scores = [s for s, r in derived.voices.scores.items() if r and _scored(derived, name, s)]
    if score is not None and score not in scores:
        raise PmsyncError(
            f"no score '{score}' on rollup '{name}' (scores: {', '.join(scores) or 'none'})"
        )
    ranking = score or (scores[0] if scores else None)
    built = {
        "issues": lambda: top_issues(derived, name, top),
        "areas": lambda: product_areas(derived),
        "unlinked": lambda: unlinked_feedback(derived, top),
    }
    if ranking is not None:
        built["scores"] = lambda: ranked_by_score(derived, name, ranking, top)
    default = (
        ("issues", "scores", "areas", "unlinked") if ranking else ("issues", "areas", "unlinked")
    )
    wanted = sections or default
    if "scores" in wanted and ranking is None:
        raise PmsyncError("no score is declared: add a [score.NAME] to a mapping file")
    chosen = [built[s]() for s in wanted]
    if fmt == "json":
        emit_json({s.name: s.as_dicts() for s in chosen})
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(chosen[0].columns)
        writer.writerows(chosen[0].rows)
    else:
        for number, section in enumerate(chosen):
            if number:
                out.print()
            print_section(out, section)


def _scored(derived: Any, rollup: str, score: str) -> bool:
    """Whether `score` is computed on `rollup`."""
    per_issue = derived.voices.scores.get(score, {})
    return any(ref in derived.rollups[rollup] for ref in per_issue)


COMMANDS: tuple[click.Command, ...] = (links_group, report_command)
