"""The `pmsync` command. Stays at the boundary: domain errors become one-screen messages here."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.registry import load_registry
from pmsync import __version__
from pmsync.errors import AuthError, ConfigError, ConnectorError, PmsyncError
from pmsync.logs import configure_logging
from pmsync.redact import redact

F = TypeVar("F", bound=Callable[..., Any])
EXIT_CONFIG = 78  # EX_CONFIG: the unit's RestartPreventExitStatus keeps systemd from looping

# Piped output is read by people too (ops save it, paste it): give tables room.
_WIDTH = None if sys.stdout.isatty() else max(int(os.environ.get("COLUMNS", "0") or 0), 140)
# Markup is off: ticket subjects, field names and error texts may contain [brackets]. Styled
# lines pass markup=True and escape what they interpolate.
out = Console(highlight=False, soft_wrap=True, width=_WIDTH, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class Context:
    """Options every command shares."""

    def __init__(self, config: str | None, log_level: str | None, log_format: str | None) -> None:
        self.config_path = config
        self.log_level = log_level
        self.log_format = log_format

    def runtime(self) -> Any:
        from sync.runtime import Runtime

        runtime = Runtime.load(self.config_path)
        log = runtime.config.settings.log
        configure_logging(self.log_level or log.level, self.log_format or log.format)  # type: ignore[arg-type]
        return runtime


def handle_errors(fn: F) -> F:
    """Turn pmsync errors into a short message and exit code 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            err.print(f"[bold red]configuration problems ({len(exc.problems)}):[/]", markup=True)
            for problem in exc.problems:
                err.print(f"  {redact(str(problem))}", markup=False)
            sys.exit(1)
        except PmsyncError as exc:
            err.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", markup=True)
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pmsync")
@click.option(
    "-c",
    "--config",
    envvar="PMSYNC_CONFIG",
    type=click.Path(dir_okay=False),
    help="Configuration file (default: ./pmsync.toml, then /etc/pmsync/pmsync.toml).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Override the configured log level.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "console"]),
    help="Log format; auto is JSON unless stderr is a terminal.",
)
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, log_level: str | None, log_format: str | None
) -> None:
    """pmsync links customer feedback, revenue and engineering work across your tools.

    It polls Zendesk, Salesforce, Jira and product analytics, normalises records through the
    mapping files, links them in one store and writes rollups back.
    """
    configure_logging(log_level or "warning", log_format or "auto")  # type: ignore[arg-type]
    ctx.obj = Context(config, log_level, log_format)


pass_context = click.make_pass_decorator(Context)


# ---- configuration ------------------------------------------------------------------------


@cli.command("check-config")
@pass_context
@handle_errors
def check_config(ctx: Context) -> None:
    """Validate the configuration and every mapping file; list every problem at once."""
    runtime = ctx.runtime()
    streams = len(runtime.jobs())
    out.print(
        f"ok: {runtime.config.path} - {len(runtime.config.connectors)} connector(s), "
        f"{len(runtime.mappings.files)} mapping file(s), {streams} stream(s) to sync",
        markup=False,
    )


@cli.group("connectors")
def connectors_group() -> None:
    """Installed connector types (plugins in the `pmsync.connectors` entry-point group)."""


@connectors_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def connectors_list(as_json: bool) -> None:
    """List installed connector types, their streams, and plugins that failed to load."""
    registry = load_registry()
    rows = [
        {
            "type": name,
            "origin": registry.origins.get(name, ""),
            "description": cls.description,
            "status": "ok",
        }
        for name, cls in sorted(registry.types.items())
    ]
    rows += [
        {"type": name, "origin": "", "description": reason, "status": "broken"}
        for name, reason in sorted(registry.broken.items())
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table("type", "status", "description", "origin")
    for row in rows:
        table.add_row(row["type"], row["status"], row["description"], row["origin"])
    out.print(table)


# ---- mappings -----------------------------------------------------------------------------


@cli.group("mappings")
def mappings_group() -> None:
    """Validate and preview the mapping files."""


@mappings_group.command("validate")
@pass_context
@handle_errors
def mappings_validate(ctx: Context) -> None:
    """Check every mapping file against its schema, the entities and the configured connectors."""
    runtime = ctx.runtime()
    for (ref, stream), compiled in sorted(runtime.mappings.streams.items()):
        out.print(
            f"ok  {ref}.{stream} -> {compiled.entity} ({len(compiled.fields)} fields) "
            f"[{compiled.file}]",
            markup=False,
        )
    out.print(
        f"{len(runtime.mappings.streams)} stream mapping(s), "
        f"{len(runtime.mappings.taxonomies)} taxonomy table(s): valid",
        markup=False,
    )


@mappings_group.command("preview")
@click.argument("stream")
@click.option("-n", "--limit", default=3, show_default=True, help="Records to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def mappings_preview(ctx: Context, stream: str, limit: int, as_json: bool) -> None:
    """Fetch a few live records of STREAM and show source -> unified, writing nothing.

    STREAM is `connector.stream`, or a stream name that only one connector has.
    """
    from pmsync.errors import MappingFailure

    runtime = ctx.runtime()
    job = runtime.jobs([stream])[0]
    connector = runtime.connector(job.connector)
    samples: list[dict[str, Any]] = []
    for page in connector.read(job.spec, None, fields=job.mapping.source_fields):
        for raw in page.records:
            entry: dict[str, Any] = {"raw": raw, "fields": [], "error": None}
            try:
                key, unified = job.mapping.map_record(raw)
                entry["key"] = key
            except MappingFailure as exc:
                entry["error"] = str(exc)
                unified = {}
            for spec in job.mapping.fields:
                entry["fields"].append(
                    {
                        "field": spec.name,
                        "source": spec.source,
                        "source_value": spec.getter(raw),
                        "value": unified.get(spec.name),
                    }
                )
            samples.append(entry)
            if len(samples) >= limit:
                break
        if len(samples) >= limit:
            break
    connector.close()
    if as_json:
        emit_json([{k: v for k, v in s.items() if k != "raw"} for s in samples])
        return
    if not samples:
        out.print(f"{job.qualified}: the source returned no records", markup=False)
    for sample in samples:
        title = f"{job.qualified} key={sample.get('key', '?')} -> {job.mapping.entity}"
        table = Table("unified field", "value", "source", "source value", title=title)
        for row in sample["fields"]:
            table.add_row(
                row["field"], _short(row["value"]), row["source"], _short(row["source_value"])
            )
        out.print(table)
        if sample["error"]:
            out.print(
                f"[red]would go to dead letters:[/] {escape(str(sample['error']))}", markup=True
            )


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "..."


@mappings_group.command("reference")
def mappings_reference() -> None:
    """Print the entities, their fields, and the transforms a mapping can use."""
    from sync.entities import ENTITIES
    from sync.mapping.transforms import TRANSFORMS

    for entity, fields in ENTITIES.items():
        out.print(
            f"[bold]{entity}[/]: " + ", ".join(f"{n} ({t})" for n, t in fields.items()), markup=True
        )
    out.print("\n[bold]transforms[/]", markup=True)
    for name, definition in TRANSFORMS.items():
        options = (
            f" [options: {', '.join(sorted(definition.options))}]" if definition.options else ""
        )
        usage = f"{{ {name} = ... }}" if definition.takes_argument else f'"{name}"'
        out.print(f"  {usage:28} {definition.summary}{options}", markup=False)


# ---- syncing ------------------------------------------------------------------------------


@cli.command("sync")
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
    help="Re-read from the beginning; records the source no longer has are tombstoned.",
)
@click.option(
    "--sweep/--no-sweep",
    default=None,
    help="Force (or skip) the id-only delete sweep; default: when due.",
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
    from pmsync.daemon.leases import cli_ownership

    runtime = ctx.runtime()
    try:
        while True:
            selected = [job.qualified for job in runtime.jobs(streams)]
            owners = sorted({name.split(".", 1)[0] for name in selected})
            with (
                cli_ownership(runtime.store.engine, owners) as held,
                _progress(enabled=not as_json and err.is_terminal) as on_page,
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


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[Any], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        tasks: dict[tuple[str, str], Any] = {}

        def on_page(result: Any) -> None:
            slot = (result.connector, result.stream)
            text = (
                f"{result.connector}.{result.stream}: {result.records_read:,} read, "
                f"{result.inserted + result.updated:,} written"
            )
            if slot not in tasks:
                tasks[slot] = progress.add_task(text, total=None)
            progress.update(tasks[slot], description=text)

        yield on_page


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


@cli.command("run")
@pass_context
def run_command(ctx: Context) -> None:
    """Run as a service: sync every stream on its poll interval until SIGTERM.

    SIGHUP reloads the configuration and mappings (keeping the running ones if the new ones
    have problems). Serves /healthz, /readyz and /metrics (see [daemon] in the configuration);
    speaks systemd's notify protocol. Replicas on one PostgreSQL store share the connectors.
    """
    from pmsync.daemon.service import Daemon

    try:
        code = Daemon(ctx.config_path, log_level=ctx.log_level, log_format=ctx.log_format).run()
    except ConfigError as exc:
        err.print(f"[bold red]configuration problems ({len(exc.problems)}):[/]", markup=True)
        for problem in exc.problems:
            err.print(f"  {redact(str(problem))}", markup=False)
        sys.exit(EXIT_CONFIG)
    except PmsyncError as exc:
        err.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", markup=True)
        sys.exit(1)
    sys.exit(code)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def status_command(ctx: Context, as_json: bool) -> None:
    """Per stream: status, last success, cursor, record counts, last error."""
    runtime = ctx.runtime()
    store = runtime.store
    counts = store.stream_counts()
    states = {(s.connector, s.stream): s for s in store.stream_states()}
    rows = []
    for job in runtime.jobs():
        slot = (job.connector, job.spec.name)
        state = states.get(slot)
        count = counts.get(slot)
        rows.append(
            {
                "stream": job.qualified,
                "status": state.status if state else "new",
                "last_success_at": state.last_success_at if state else None,
                "cursor": state.cursor if state else None,
                "records": count.live if count else 0,
                "tombstones": count.deleted if count else 0,
                "dead_letters": count.dead_letters if count else 0,
                "last_sweep_at": state.last_sweep_at if state else None,
                "last_error": state.last_error if state else None,
                "failures": state.failures if state else 0,
                "next_attempt_at": state.next_attempt_at if state else None,
                "owner": state.owner if state else None,
            }
        )
    runtime.close()
    if as_json:
        emit_json(rows)
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
        status = row["status"]
        if row["failures"]:
            status += f" ({row['failures']}x)"
        table.add_row(
            row["stream"],
            status,
            _when(row["last_success_at"]) or "never",
            str(row["records"]),
            str(row["tombstones"]),
            str(row["dead_letters"]),
            _short(row["cursor"] or "", 40),
            _when(row["next_attempt_at"]),
            row["owner"] or "",
            row["last_error"] or "",
        )
    out.print(table)


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M:%SZ")) if moment else ""


@cli.command("check")
@click.argument("connectors", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def check_command(ctx: Context, connectors: tuple[str, ...], as_json: bool) -> None:
    """Test each connector's credentials and reachability (all, or those named)."""
    runtime = ctx.runtime()
    names = list(connectors) or list(runtime.config.connectors)
    rows = []
    for name in names:
        connector = runtime.connector(name)
        try:
            connector.check()
            rows.append({"connector": name, "ok": True, "error": None})
        except ConnectorError as exc:
            kind = "credentials" if isinstance(exc, AuthError) else type(exc).__name__
            rows.append({"connector": name, "ok": False, "error": f"{kind}: {redact(str(exc))}"})
    runtime.close()
    if as_json:
        emit_json(rows)
    else:
        for row in rows:
            mark = "ok  " if row["ok"] else "FAIL"
            out.print(
                f"{mark} {row['connector']}" + (f"  {row['error']}" if row["error"] else ""),
                markup=False,
            )
    if not all(row["ok"] for row in rows):
        sys.exit(1)


@cli.command("discover")
@click.argument("connector")
@click.argument("object_name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def discover_command(ctx: Context, connector: str, object_name: str | None, as_json: bool) -> None:
    """List the objects CONNECTOR can read, or the fields OBJECT has (custom fields included)."""
    runtime = ctx.runtime()
    instance = runtime.connector(connector)
    try:
        if object_name is None:
            objects = list(instance.objects())
            if as_json:
                emit_json(objects)
            else:
                for name in objects:
                    out.print(name, markup=False)
            return
        fields = instance.discover(object_name)
    finally:
        runtime.close()
    if as_json:
        emit_json([f.__dict__ for f in fields])
        return
    table = Table("field", "type", "label", "custom", title=f"{connector} {object_name}")
    for f in fields:
        table.add_row(f.name, f.type, f.label, "yes" if f.custom else "")
    out.print(table)


@cli.command("dead-letters")
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


# ---- links and reports --------------------------------------------------------------------


@cli.group("links")
def links_group() -> None:
    """How tickets link to accounts and issues."""


@links_group.command("review")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def links_review(ctx: Context, as_json: bool) -> None:
    """Ambiguous and missing matches by revenue at stake; resolve them in the overrides file."""
    from sync.links.report import review_queue

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
    _print_section(section)
    for problem in derived.problems:
        err.print(f"[yellow]override ignored:[/] {escape(str(problem))}", markup=True)
    where = overrides or "the file named by links.overrides in your mappings"
    out.print(f"{len(section.rows)} to review; decide them in {where}", markup=False)


@cli.command("report")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
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
    ctx: Context, fmt: str, sections: tuple[str, ...], top: int, rollup: str | None
) -> None:
    """Top issues by revenue at stake, product areas by demand, and unlinked feedback."""
    from sync.links.report import product_areas, top_issues, unlinked_feedback

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
        for section in chosen:
            _print_section(section)


@cli.command("demo")
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
    from pmsync.demo import run_demo
    from sync.links.report import top_issues

    configure_logging("error", "console")
    with _progress(enabled=err.is_terminal) as on_page:
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
    targets = {(w.connector, w.target_key) for w in applied.applied}
    out.print(
        f"Wrote {len(applied.applied):,} fields back onto {len(targets):,} issues and "
        f"accounts ({len(applied.failed)} failed).\n"
    )
    section = top_issues(derived, next(iter(derived.rollups)), top)
    table = Table(
        "issue",
        "summary",
        "status",
        "customer ARR",
        "accounts",
        "tickets",
        "top accounts",
        title="Top issues by customer ARR (written onto each Jira issue)",
    )
    for row in section.rows:
        table.add_row(
            row[0],
            str(row[1])[:40],
            row[2],
            f"{row[3]:,.0f} {row[4]}",
            str(row[5]),
            str(row[6]),
            row[7],
        )
    out.print(table)
    config = demo.config_path
    out.print(
        f"\nDone in {run.seconds['total']:.1f} s. The data is in {demo.store_path} (SQLite); "
        f"the configuration in {config}, the mappings in {demo.mappings_dir}.",
        markup=False,
    )
    out.print("Try next:", markup=False)
    for line in (
        f"pmsync -c {config} report                 # issues, product areas, unlinked",
        f"pmsync -c {config} links review           # what the rules could not decide",
        f"pmsync -c {config} status                 # every stream's cursor and counts",
        "pmsync demo --keep-running                # then plan, apply, run against it",
        "edit the mappings, then `pmsync -c ... mappings validate`",
    ):
        out.print(f"  {line}", markup=False)


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


@cli.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
@handle_errors
def plan_command(ctx: Context, as_json: bool) -> None:
    """Every write-back that would happen (target, field, old -> new); writes nothing."""
    runtime = ctx.runtime()
    try:
        plan = runtime.plan()
    finally:
        runtime.close()
    if as_json:
        emit_json(
            {
                "plan_id": plan.plan_id,
                "writes": [w.as_dict() for w in plan.writes],
                "kept_human_edits": [w.as_dict() for w in plan.kept],
                "needs_confirmation": [t.__dict__ for t in plan.guard],
            }
        )
        return
    _print_plan(plan)


def _print_plan(plan: Any) -> None:
    for write in plan.writes:
        marker = "  (a person changed it; overwriting)" if write.human_edit else ""
        out.print(f"  {write.describe()}{marker}", markup=False)
    for write in plan.kept:
        out.print(
            f"  kept: {write.describe()} - a person changed it since pmsync wrote it", markup=False
        )
    targets = {(w.connector, w.target_key) for w in plan.writes}
    out.print(
        f"{len(plan.writes)} write(s) to {len(targets)} target(s); "
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


@cli.command("apply")
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
    runtime = ctx.runtime()
    try:
        with runtime.writeback_lock():
            plan = runtime.plan()
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


def _print_section(section: Any) -> None:
    table = Table(*section.columns, title=section.title)
    for row in section.rows:
        table.add_row(*(f"{v:,.0f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="pmsync")


if __name__ == "__main__":
    main()
