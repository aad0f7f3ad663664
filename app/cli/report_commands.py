"""Commands that show what the store knows: link review and the demand report."""

from __future__ import annotations

import sys

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
    type=click.Choice(["issues", "areas", "unlinked"]),
    help="Only these sections (repeatable); CSV prints one section per run.",
)
@click.option("--top", default=20, show_default=True, help="Rows in the ranked sections.")
@click.option("--rollup", default=None, help="Which declared rollup ranks the issues.")
@pass_context
@handle_errors
def report_command(
    ctx: Context,
    fmt: str,
    as_json: bool,
    sections: tuple[str, ...],
    top: int,
    rollup: str | None,
) -> None:
    """Top issues by revenue at stake, product areas by demand, and unlinked feedback."""
    if as_json:
        if fmt not in ("table", "json"):
            raise click.UsageError(f"--json and --format {fmt} ask for two formats; choose one")
        fmt = "json"
    from pmsync.sync.links.report import product_areas, top_issues, unlinked_feedback

    runtime = ctx.runtime()
    derived = runtime.derive()
    runtime.close()
    name = rollup or next(iter(derived.rollups))
    if name not in derived.rollups:
        raise PmsyncError(f"no rollup '{name}' (rollups: {', '.join(derived.rollups)})")
    built = {
        "issues": lambda: top_issues(derived, name, top),
        "areas": lambda: product_areas(derived),
        "unlinked": lambda: unlinked_feedback(derived, top),
    }
    chosen = [built[s]() for s in (sections or ("issues", "areas", "unlinked"))]
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


COMMANDS: tuple[click.Command, ...] = (links_group, report_command)
